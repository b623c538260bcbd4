extension WorkflowDefinition {
    /// Checks the rules a definition must follow beyond its shape, and returns every broken one:
    /// - step names are unique;
    /// - at most one step is the pivot, the pivot has no compensation (it cannot be undone), and no
    ///   step after it has one (after the pivot the saga only moves forward);
    /// - every placeholder is well formed and names data that exists when it is rendered: an earlier
    ///   step's output (a compensation may also use its own step's), a field of the input schema
    ///   when there is one, or a saga field;
    /// - a condition (`when`) reads only the input schema's fields and earlier steps, compares them
    ///   with values of their type, and is not on the pivot (the point of no return is not optional);
    /// - failure handlers are neither the pivot nor compensated, and see every step and the handlers
    ///   before them;
    /// - each signal is waited for by one step, and not by a failure handler;
    /// - a child step does not start its own workflow;
    /// - a parallel group's name is unique among steps and groups, the pivot is neither in a group
    ///   nor before one, and a step of a branch reads only the steps before its group and the earlier
    ///   steps of its own branch (another branch's output may not exist yet).
    public func validate() -> [DefinitionIssue] {
        var issues: [DefinitionIssue] = []
        var seen: Set<String> = []
        for step in allSteps where !seen.insert(step.name).inserted {
            issues.append(.init(step: step.name, field: "name", message: "another step is already named '\(step.name)'"))
        }
        let groups = parallelGroups
        for group in groups where !seen.insert(group.name).inserted {
            issues.append(
                .init(step: group.name, field: "name", message: "another step or parallel group is already named '\(group.name)'"))
        }
        if let pivotIndex {
            let pivotName = steps[pivotIndex].name
            for group in groups where group.range.contains(pivotIndex) {
                issues.append(
                    .init(
                        step: pivotName, field: "pivot",
                        message:
                            "the pivot cannot be in parallel group '\(group.name)': when another branch fails, the pivot's effect could no longer be undone; put the pivot after the group"
                    ))
            }
            for group in groups where group.range.lowerBound > pivotIndex {
                issues.append(
                    .init(
                        step: group.name, field: "parallel",
                        message:
                            "a parallel group cannot follow the pivot '\(pivotName)': after the pivot a failure suspends the saga for an operator, who acts on one step at a time; run these steps one after another, or put the group before the pivot"
                    ))
            }
        }
        var signals: [String: String] = [:]
        for step in allSteps {
            guard let signal = step.signal else { continue }
            if let other = signals[signal] {
                issues.append(.init(step: step.name, field: "signal", message: "step '\(other)' already waits for signal '\(signal)'"))
            }
            signals[signal] = signals[signal] ?? step.name
        }
        for handler in failureHandlers {
            if handler.signal != nil {
                issues.append(
                    .init(
                        step: handler.name, field: "signal",
                        message: "a failure handler runs after the saga has failed; it cannot wait for a signal"))
            }
            if handler.pivot {
                issues.append(
                    .init(
                        step: handler.name, field: "pivot",
                        message: "a failure handler runs after the saga has failed and cannot be the pivot"))
            }
            if handler.compensate != nil {
                issues.append(
                    .init(
                        step: handler.name, field: "compensate",
                        message: "a failure handler is never compensated; leave compensate out"))
            }
        }
        if let pivotIndex, steps[pivotIndex].when != nil {
            issues.append(
                .init(
                    step: steps[pivotIndex].name, field: "when",
                    message: "the pivot is the point of no return and cannot be conditional: put the condition on the steps around it"))
        }

        let pivots = steps.filter(\.pivot)
        if pivots.count > 1 {
            for extra in pivots.dropFirst() {
                issues.append(
                    .init(
                        step: extra.name,
                        field: "pivot",
                        message: "only one step may be the pivot; '\(pivots[0].name)' already is"
                    )
                )
            }
        }
        if let pivotIndex {
            for (index, step) in steps.enumerated() where index >= pivotIndex && step.compensate != nil {
                let message =
                    index == pivotIndex
                    ? "the pivot is the point of no return and cannot have a compensation"
                    : "a step after the pivot '\(steps[pivotIndex].name)' cannot have a compensation: once the pivot succeeds the saga only moves forward"
                issues.append(.init(step: step.name, field: "compensate", message: message))
            }
        }

        let all = allSteps
        for (index, step) in all.enumerated() {
            let visible = visibleSteps(from: index)
            if let condition = step.when {
                issues += checkCondition(condition, step: step, field: "when", visibleSteps: visible)
            }
            issues += checkReferences(
                in: step.payload, field: step.workflow == nil ? "payload" : "input", step: step, visibleSteps: visible)
            if step.workflow == name {
                issues.append(
                    .init(step: step.name, field: "workflow", message: "a workflow cannot start a saga of itself (it would never end)"))
            }
            if let compensation = step.compensate {
                issues += checkReferences(
                    in: compensation.payload,
                    field: "compensate.payload",
                    step: step,
                    visibleSteps: visible + [step]
                )
            }
        }
        for group in groups {
            for branch in group.branches {
                guard let placement = steps[branch.lowerBound].branch, let condition = placement.when else { continue }
                // Decided when the group starts: it sees what came before the group.
                let before = Array(steps[..<group.range.lowerBound])
                let asStep = StepDefinition(name: placement.name, participant: "", action: "")
                issues += checkCondition(condition, step: asStep, field: "when", visibleSteps: before).map { issue in
                    DefinitionIssue(step: group.name, field: "branch '\(placement.name)'.\(issue.field)", message: issue.message)
                }
            }
        }
        return issues
    }

    /// The steps whose outputs exist whenever the entry at `index` of ``allSteps`` runs: those
    /// before it, except the other branches of its own parallel group.
    private func visibleSteps(from index: Int) -> [StepDefinition] {
        let all = allSteps
        guard let group = parallelGroup(containing: index), let branch = group.branch(containing: index) else {
            return Array(all[..<index])
        }
        return Array(all[..<group.range.lowerBound] + all[branch.lowerBound..<index])
    }

    private func checkReferences(
        in template: JSONValue,
        field: String,
        step: StepDefinition,
        visibleSteps: [StepDefinition]
    ) -> [DefinitionIssue] {
        var issues: [DefinitionIssue] = []
        template.forEachString(path: field) { path, text in
            let segments: [TemplateSegment]
            do throws(TemplateError) {
                segments = try TemplateSegment.parse(text)
            } catch {
                issues.append(.init(step: step.name, field: path, message: error.description))
                return
            }
            for case .reference(let reference) in segments {
                if let problem = problem(with: reference, visibleSteps: visibleSteps, ownStep: step.name) {
                    issues.append(.init(step: step.name, field: path, message: "{{\(reference)}}: \(problem)"))
                }
            }
        }
        return issues
    }

    private func checkCondition(
        _ condition: StepCondition,
        step: StepDefinition,
        field: String,
        visibleSteps: [StepDefinition]
    ) -> [DefinitionIssue] {
        var issues: [DefinitionIssue] = []
        for reference in condition.references {
            let problem: String?
            switch reference {
            case .input(let path): problem = self.problem(with: .input(path: path), visibleSteps: visibleSteps, ownStep: step.name)
            case .stepOutput(let name, _), .stepStatus(let name), .stepErrorCode(let name):
                if name == step.name {
                    problem = "a step's condition is decided before it runs, so it cannot read the step itself"
                } else {
                    problem = self.problem(with: .stepOutput(step: name, path: []), visibleSteps: visibleSteps, ownStep: step.name)
                }
            }
            if let problem { issues.append(.init(step: step.name, field: field, message: "\(reference): \(problem)")) }
        }
        condition.expression.forEachComparison { left, comparison, right in
            for (reference, literal) in [(left, right), (right, left)] {
                guard case .reference(let reference) = reference, case .literal(let value) = literal,
                    let problem = typeProblem(reference, comparison, value)
                else { continue }
                issues.append(.init(step: step.name, field: field, message: "\(reference) \(comparison.rawValue) \(literal): \(problem)"))
            }
        }
        return issues
    }

    /// Why comparing `reference` with `value` cannot mean what it says, when the definition knows the
    /// reference's type: an input field of the schema, a step's status or error code.
    private func typeProblem(_ reference: ConditionReference, _ comparison: ComparisonOperator, _ value: JSONValue) -> String? {
        if value == .null {
            return comparison.orders ? "null cannot be ordered; use exists(…) or == null" : nil
        }
        switch reference {
        case .stepStatus:
            let statuses = StepStatus.allCases.map(\.rawValue)
            guard case .string(let text) = value, statuses.contains(text) else {
                return "a step's status is one of \(statuses.joined(separator: ", "))"
            }
            return comparison.orders ? "statuses have no order; use == or !=" : nil
        case .stepErrorCode:
            guard case .string = value else { return "an error code is a string" }
            return nil
        case .stepOutput:
            return nil
        case .input(let path):
            guard path.count == 1, let field = input?.properties[path[0]] else { return nil }
            let matches: Bool
            switch (field.type, value) {
            case (.string, .string), (.boolean, .bool): matches = true
            case (.integer, .integer), (.integer, .number), (.number, .integer), (.number, .number): matches = true
            default: matches = false
            }
            guard matches else {
                let expected =
                    switch field.type {
                    case .string: "a string"
                    case .integer, .number: "a number"
                    case .boolean: "true or false"
                    case .object, .array: "null, or use exists(…)"
                    }
                return "input.\(path[0]) is \(field.type == .integer ? "an" : "a") \(field.type.rawValue); compare it with \(expected)"
            }
            if comparison.orders && (field.type == .boolean || field.type == .object || field.type == .array) {
                return "a \(field.type.rawValue) has no order; use == or !="
            }
            return nil
        }
    }

    private func problem(
        with reference: TemplateReference,
        visibleSteps: [StepDefinition],
        ownStep: String
    ) -> String? {
        switch reference {
        case .saga:
            return nil
        case .input(let path):
            guard let schema = input, let field = path.first else { return nil }
            guard schema.properties[field] != nil else {
                let known = schema.properties.keys.sorted().joined(separator: ", ")
                return "the input schema has no field '\(field)' (it has: \(known))"
            }
            return nil
        case .stepOutput(let name, _):
            if visibleSteps.contains(where: { $0.name == name }) { return nil }
            if name == ownStep { return "a step cannot use its own output in its payload (only its compensation can)" }
            if let own = stepIndex(named: ownStep), let other = stepIndex(named: name), let group = parallelGroup(containing: own),
                group.range.contains(other), group.branch(containing: own) != group.branch(containing: other)
            {
                return
                    "step '\(name)' runs in parallel with this one (another branch of group '\(group.name)'), so its output may not exist yet; read it after the group"
            }
            if steps.contains(where: { $0.name == name }) {
                return "step '\(name)' runs later, so its output does not exist yet"
            }
            if failureHandlers.contains(where: { $0.name == name }) {
                return "'\(name)' is a failure handler, which runs only once the saga has failed and been compensated"
            }
            return "there is no step named '\(name)'"
        }
    }
}

extension ConditionExpression {
    /// Calls `body` with every comparison in the expression.
    func forEachComparison(_ body: (ConditionOperand, ComparisonOperator, ConditionOperand) -> Void) {
        switch self {
        case .and(let left, let right), .or(let left, let right):
            left.forEachComparison(body)
            right.forEachComparison(body)
        case .not(let operand): operand.forEachComparison(body)
        case .compare(let left, let comparison, let right): body(left, comparison, right)
        case .exists, .isTrue: break
        }
    }
}

extension JSONValue {
    /// Calls `body` with every string in the value and its path (`payload.items[0].sku`).
    func forEachString(path: String, _ body: (String, String) -> Void) {
        switch self {
        case .string(let text):
            body(path, text)
        case .array(let elements):
            for (index, element) in elements.enumerated() { element.forEachString(path: "\(path)[\(index)]", body) }
        case .object(let members):
            for key in members.keys.sorted() { members[key]!.forEachString(path: "\(path).\(key)", body) }
        default:
            break
        }
    }
}

extension InputSchema {
    /// What is wrong with a saga's input, one message per problem; empty when it fits the schema.
    /// - Parameter input: The input a saga was submitted with.
    public func violations(of input: JSONValue) -> [String] {
        guard case .object(let members) = input else {
            return ["input must be a JSON object, not \(input.typeName)"]
        }
        var problems: [String] = []
        for name in required where members[name] == nil || members[name] == .null {
            problems.append("input.\(name) is required")
        }
        for (name, value) in members.sorted(by: { $0.key < $1.key }) {
            guard let field = properties[name], value != .null else { continue }
            if let problem = field.problem(with: value) { problems.append("input.\(name) \(problem)") }
        }
        return problems
    }
}

extension InputField {
    func problem(with value: JSONValue) -> String? {
        let numeric: Double?
        switch (type, value) {
        case (.string, .string), (.boolean, .bool), (.object, .object), (.array, .array):
            return nil
        case (.integer, .integer(let number)), (.number, .integer(let number)):
            numeric = Double(number)
        // A whole number written with a fraction or exponent (`2.0`, `1e3`) is an integer only
        // while a Double holds it exactly: beyond 2^53 it has already lost digits.
        case (.integer, .number(let number)) where number.rounded() == number && abs(number) <= 9_007_199_254_740_992:
            numeric = number
        case (.number, .number(let number)):
            numeric = number
        default:
            return "must be \(type == .integer ? "an" : "a") \(type.rawValue), not \(value.typeName)"
        }
        if let minimum, let numeric, numeric < minimum {
            return "must be at least \(minimum.rounded() == minimum ? String(Int64(minimum)) : String(minimum))"
        }
        return nil
    }
}

extension WorkflowDefinition {
    /// Whether `text` may name a workflow, step, participant, action or signal: letters, digits,
    /// `-` and `_`, starting with a letter or digit (names go into NATS subjects and message ids).
    public static func isIdentifier(_ text: String) -> Bool { DefinitionReader.isIdentifier(text) }
}
