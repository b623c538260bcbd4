import Foundation
import Yams

/// The text formats a workflow definition may be written in.
public enum WorkflowFormat: String, Sendable, CaseIterable {
    case yaml
    case json

    /// The format a file name's extension implies (`.yaml`, `.yml`, `.json`).
    public init?(fileName: String) {
        let lowered = fileName.lowercased()
        if lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml") {
            self = .yaml
        } else if lowered.hasSuffix(".json") {
            self = .json
        } else {
            return nil
        }
    }
}

extension WorkflowDefinition {
    /// Parses and validates a definition.
    /// - Parameters:
    ///   - text: The definition's YAML or JSON text.
    ///   - format: Which of the two it is.
    ///   - source: Where it came from (a file path), used to prefix every error.
    ///   - limits: The bounds it must keep; the text's size is checked before it is parsed.
    /// - Returns: The definition, with defaults filled in for omitted fields.
    /// - Throws: ``DefinitionError`` listing every problem, each naming the step and the field.
    public static func parse(
        _ text: String,
        format: WorkflowFormat,
        source: String? = nil,
        limits: DefinitionLimits = .default
    ) throws(DefinitionError) -> WorkflowDefinition {
        guard text.utf8.count <= limits.maximumBytes else {
            throw DefinitionError(
                source: source,
                issues: [
                    DefinitionIssue(
                        step: nil, field: "(document)",
                        message: "is \(text.utf8.count) bytes long; definitions are limited to \(limits.maximumBytes) bytes")
                ]
            )
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: text, format: format)
        } catch {
            throw DefinitionError(
                source: source,
                issues: [DefinitionIssue(step: nil, field: "(document)", message: "not valid \(format.rawValue.uppercased()): \(error)")]
            )
        }
        return try decode(document, source: source, limits: limits)
    }

    /// Builds and validates a definition from an already-parsed document (the body of an API call).
    /// - Throws: ``DefinitionError`` listing every problem.
    public static func decode(
        _ document: JSONValue,
        source: String? = nil,
        limits: DefinitionLimits = .default
    ) throws(DefinitionError) -> WorkflowDefinition {
        let log = DefinitionIssueLog(limits: limits)
        let definition = read(document, log: log)
        // Semantic rules run even when some fields were malformed (those read as their defaults),
        // so one pass reports every problem: a typo in a timeout does not hide a bad reference.
        if let definition { log.add(definition.validate()) }
        guard let definition, log.issues.isEmpty else {
            throw DefinitionError(source: source, issues: log.issues)
        }
        return definition
    }

    /// Reads the document's shape. Problems are logged; a malformed field reads as its default so
    /// the rest can still be checked. `nil` only when the document is not a mapping.
    private static func read(_ document: JSONValue, log: DefinitionIssueLog) -> WorkflowDefinition? {
        guard
            let reader = DefinitionReader(
                document,
                path: "",
                step: nil,
                allowedKeys: ["name", "version", "description", "input", "deadline", "steps", "on_failure"],
                log: log
            )
        else { return nil }
        let name = reader.identifier("name")
        let version = reader.integer("version", required: true)
        if let version, version < 1 { reader.issue("version", "must be 1 or more") }
        if let version, version > log.limits.maximumVersion {
            reader.issue("version", "must be at most \(log.limits.maximumVersion)")
        }
        let description = reader.string("description") ?? ""
        if description.count > log.limits.maximumDescriptionLength {
            reader.issue(
                "description",
                "is \(description.count) characters long; at most \(log.limits.maximumDescriptionLength) are allowed")
        }
        let input = reader.raw("input").flatMap { readInputSchema($0, log: log) }
        let deadline = reader.duration("deadline")
        if let deadline, deadline == .zero { reader.issue("deadline", "must be longer than 0s") }
        let stepValues = reader.array("steps", required: true) ?? []
        if reader.has("steps") && stepValues.isEmpty { reader.issue("steps", "a workflow needs at least one step") }
        guard stepValues.count <= log.limits.maximumSteps else {
            // Each step would add its own issues; the count is the one to fix.
            reader.issue("steps", "has \(stepValues.count) steps; a workflow may have at most \(log.limits.maximumSteps)")
            return nil
        }
        let steps = stepValues.enumerated().flatMap { index, value in
            value.objectValue?["parallel"] != nil
                ? readParallelGroup(value, index: index, log: log)
                : readStep(value, index: index, list: "steps", log: log).map { [$0] } ?? []
        }
        guard steps.count <= log.limits.maximumSteps else {
            reader.issue(
                "steps",
                "has \(steps.count) steps counting those of its parallel branches; a workflow may have at most \(log.limits.maximumSteps)")
            return nil
        }
        let handlerValues = reader.array("on_failure") ?? []
        if reader.has("on_failure") && handlerValues.isEmpty { reader.issue("on_failure", "leave it out, or list at least one step") }
        guard steps.count + handlerValues.count <= log.limits.maximumSteps else {
            reader.issue(
                "on_failure",
                "has \(handlerValues.count) steps; a workflow may have at most \(log.limits.maximumSteps) steps and failure handlers together"
            )
            return nil
        }
        let handlers = handlerValues.enumerated().compactMap { index, value -> StepDefinition? in
            if value.objectValue?["parallel"] != nil {
                log.add(
                    step: value.objectValue?["name"]?.stringValue ?? "on_failure[\(index)]", field: "parallel",
                    "failure handlers run one after another; a parallel group belongs in steps")
                return nil
            }
            return readStep(value, index: index, list: "on_failure", log: log)
        }
        return WorkflowDefinition(
            name: name ?? "",
            version: version ?? 1,
            description: description,
            input: input,
            deadline: deadline,
            steps: steps,
            failureHandlers: handlers
        )
    }

    /// Reads a parallel group (`name` and `parallel`, a list of branches) into its steps, each
    /// placed in its group and branch. A branch is one step, or a mapping with `name`, an optional
    /// `when` and `steps`.
    private static func readParallelGroup(_ value: JSONValue, index: Int, log: DefinitionIssueLog) -> [StepDefinition] {
        let label = value.objectValue?["name"]?.stringValue ?? "steps[\(index)]"
        guard let reader = DefinitionReader(value, path: "", step: label, allowedKeys: ["name", "parallel"], log: log) else { return [] }
        let group = reader.identifier("name") ?? label
        guard let branchValues = reader.array("parallel", required: true) else { return [] }
        if branchValues.count < 2 {
            reader.issue("parallel", "a parallel group needs at least two branches (a single branch is a plain step or steps)")
        }
        var steps: [StepDefinition] = []
        var branchNames: Set<String> = []
        for (position, branchValue) in branchValues.enumerated() {
            let path = "parallel[\(position)]"
            let placement: BranchPlacement
            var branchSteps: [StepDefinition]
            if branchValue.objectValue?["steps"] != nil {
                guard
                    let branchReader = DefinitionReader(
                        branchValue, path: path, step: group, allowedKeys: ["name", "when", "steps"], log: log)
                else { continue }
                let name = branchReader.identifier("name") ?? path
                placement = BranchPlacement(group: group, name: name, when: readCondition(branchReader))
                let values = branchReader.array("steps", required: true) ?? []
                if values.isEmpty { branchReader.issue("steps", "a branch needs at least one step") }
                branchSteps = values.enumerated().compactMap { offset, stepValue in
                    readBranchStep(stepValue, index: offset, list: "\(group).\(path).steps", log: log)
                }
            } else {
                guard let step = readBranchStep(branchValue, index: position, list: "\(group).parallel", log: log) else { continue }
                placement = BranchPlacement(group: group, name: step.name)
                branchSteps = [step]
            }
            if !branchNames.insert(placement.name).inserted {
                reader.issue(path, "another branch of group '\(group)' is already named '\(placement.name)'")
            }
            for offset in branchSteps.indices { branchSteps[offset].branch = placement }
            steps += branchSteps
        }
        return steps
    }

    /// Reads one step of a branch: a step like any other, except that groups do not nest.
    private static func readBranchStep(_ value: JSONValue, index: Int, list: String, log: DefinitionIssueLog) -> StepDefinition? {
        if value.objectValue?["parallel"] != nil {
            log.add(
                step: value.objectValue?["name"]?.stringValue ?? "\(list)[\(index)]", field: "parallel",
                "parallel groups do not nest: a branch holds steps; make the inner group's branches branches of this group")
            return nil
        }
        return readStep(value, index: index, list: list, log: log)
    }

    /// Reads one step; `nil` only when it is not a mapping.
    private static func readStep(_ value: JSONValue, index: Int, list: String, log: DefinitionIssueLog) -> StepDefinition? {
        // Name the step in messages by its name when it has one, by its position otherwise.
        let label = value.objectValue?["name"]?.stringValue ?? "\(list)[\(index)]"
        guard
            let reader = DefinitionReader(
                value,
                path: "",
                step: label,
                allowedKeys: [
                    "name", "participant", "action", "payload", "timeout", "retry", "compensate", "pivot", "when", "signal", "workflow",
                    "input",
                ],
                log: log
            )
        else { return nil }
        if reader.has("workflow") {
            // A child step starts a saga; nothing about a command applies to it.
            for key in ["participant", "action", "payload", "compensate", "pivot", "signal"] where reader.has(key) {
                let hint = key == "payload" ? "; the child's input is `input`" : ""
                reader.issue(key, "a child step starts a saga of its workflow and sends no command; leave \(key) out\(hint)")
            }
            return StepDefinition.child(
                reader.identifier("workflow") ?? "", name: reader.identifier("name") ?? label, input: readTemplate(reader, key: "input"),
                timeout: readTimeout(reader),
                retry: reader.raw("retry").map { readRetry($0, path: "retry", defaults: .default, step: label, log: log) } ?? .default,
                when: readCondition(reader))
        }
        if reader.has("input") { reader.issue("input", "only a child step (workflow: …) has an input; a step's command has a payload") }
        if reader.has("signal") {
            // A signal step waits; it sends nothing, so nothing about a command applies to it.
            for key in ["participant", "action", "payload", "retry", "compensate", "pivot"] where reader.has(key) {
                reader.issue(key, "a signal step waits for its signal and sends no command; leave \(key) out")
            }
            return StepDefinition.waiting(
                for: reader.identifier("signal") ?? "", name: reader.identifier("name") ?? label, timeout: readTimeout(reader),
                when: readCondition(reader))
        }
        return StepDefinition(
            name: reader.identifier("name") ?? label,
            participant: reader.identifier("participant") ?? "",
            action: reader.identifier("action") ?? "",
            payload: readTemplate(reader),
            timeout: readTimeout(reader),
            retry: reader.raw("retry").map { readRetry($0, path: "retry", defaults: .default, step: label, log: log) }
                ?? .default,
            compensate: reader.raw("compensate").map { readCompensation($0, step: label, log: log) },
            pivot: reader.bool("pivot") ?? false,
            when: readCondition(reader)
        )
    }

    /// The step's condition, or `nil` when absent or malformed (logged).
    private static func readCondition(_ reader: DefinitionReader) -> StepCondition? {
        guard let text = reader.string("when") else { return nil }
        do throws(ConditionError) {
            return try StepCondition(parsing: text)
        } catch {
            reader.issue("when", "\(error)")
            return nil
        }
    }

    private static func readCompensation(_ value: JSONValue, step: String, log: DefinitionIssueLog) -> CompensationDefinition {
        let reader = DefinitionReader(
            value,
            path: "compensate",
            step: step,
            allowedKeys: ["action", "payload", "timeout", "retry"],
            log: log
        )
        return CompensationDefinition(
            action: reader?.identifier("action") ?? "",
            payload: reader.map { readTemplate($0) } ?? .object([:]),
            timeout: reader.map(readTimeout) ?? StepDefinition.defaultTimeout,
            retry: reader?.raw("retry").map {
                readRetry($0, path: "compensate.retry", defaults: .defaultCompensation, step: step, log: log)
            } ?? .defaultCompensation
        )
    }

    /// The payload template (or a child step's `input`), or an empty one when absent or over the size
    /// limit (logged).
    private static func readTemplate(_ reader: DefinitionReader, key: String = "payload") -> JSONValue {
        guard let template = reader.raw(key) else { return .object([:]) }
        let size = template.canonicalJSON.utf8.count
        guard size <= reader.limits.maximumTemplateBytes else {
            reader.issue(key, "is \(size) bytes as JSON; a payload template may have at most \(reader.limits.maximumTemplateBytes)")
            return .object([:])
        }
        return template
    }

    /// The timeout, or its default when absent or invalid (an invalid one is logged).
    private static func readTimeout(_ reader: DefinitionReader) -> SagaDuration {
        guard let timeout = reader.duration("timeout") else { return StepDefinition.defaultTimeout }
        guard timeout > .zero else {
            reader.issue("timeout", "must be longer than 0s")
            return StepDefinition.defaultTimeout
        }
        return timeout
    }

    /// The retry policy; fields that are absent or invalid (logged) take their defaults.
    private static func readRetry(
        _ value: JSONValue,
        path: String,
        defaults: RetryPolicy,
        step: String,
        log: DefinitionIssueLog
    ) -> RetryPolicy {
        guard
            let reader = DefinitionReader(
                value,
                path: path,
                step: step,
                allowedKeys: ["max_attempts", "backoff", "initial", "max_delay", "jitter"],
                log: log
            )
        else { return defaults }
        let maxAttempts = reader.integer("max_attempts") ?? defaults.maxAttempts
        if maxAttempts < 1 { reader.issue("max_attempts", "must be 1 or more (1 means no retry)") }
        if maxAttempts > log.limits.maximumAttempts { reader.issue("max_attempts", "must be at most \(log.limits.maximumAttempts)") }
        var backoff = defaults.backoff
        if let text = reader.string("backoff") {
            if let parsed = RetryPolicy.Backoff(rawValue: text) {
                backoff = parsed
            } else {
                reader.issue("backoff", "must be fixed or exponential, not '\(text)'")
            }
        }
        let initial = reader.duration("initial") ?? defaults.initial
        let maxDelay = reader.duration("max_delay") ?? defaults.maxDelay
        if maxDelay < initial { reader.issue("max_delay", "must not be shorter than initial (\(initial))") }
        let jitter = reader.number("jitter") ?? defaults.jitter
        if !(0...1).contains(jitter) { reader.issue("jitter", "must be between 0 and 1 (a fraction of each delay)") }
        return RetryPolicy(maxAttempts: maxAttempts, backoff: backoff, initial: initial, maxDelay: maxDelay, jitter: jitter)
    }

    private static func readInputSchema(_ value: JSONValue, log: DefinitionIssueLog) -> InputSchema? {
        guard
            let reader = DefinitionReader(
                value,
                path: "input",
                step: nil,
                allowedKeys: ["type", "required", "properties"],
                log: log
            )
        else { return nil }
        if let type = reader.string("type"), type != "object" {
            reader.issue("type", "saga input is always an object; leave type out or write object")
        }
        var properties: [String: InputField] = [:]
        if let raw = reader.raw("properties") {
            if case .object(let members) = raw {
                for (name, fieldValue) in members.sorted(by: { $0.key < $1.key }) {
                    if let field = readInputField(fieldValue, path: "input.properties.\(name)", log: log) {
                        properties[name] = field
                    }
                }
            } else {
                reader.issue("properties", "must be a mapping of field name to {type: …}, not \(raw.typeName)")
            }
        }
        var required: [String] = []
        for (index, element) in (reader.array("required") ?? []).enumerated() {
            guard let name = element.stringValue else {
                reader.issue("required[\(index)]", "must be a field name, not \(element.typeName)")
                continue
            }
            if properties[name] == nil && reader.has("properties") {
                reader.issue("required[\(index)]", "'\(name)' is not one of the properties")
            }
            required.append(name)
        }
        return InputSchema(required: required, properties: properties)
    }

    private static func readInputField(_ value: JSONValue, path: String, log: DefinitionIssueLog) -> InputField? {
        guard
            let reader = DefinitionReader(
                value,
                path: path,
                step: nil,
                allowedKeys: ["type", "description", "minimum"],
                log: log
            )
        else { return nil }
        guard let typeName = reader.string("type", required: true) else { return nil }
        guard let type = InputField.FieldType(rawValue: typeName) else {
            let names = InputField.FieldType.allCases.map(\.rawValue).joined(separator: ", ")
            reader.issue("type", "unknown type '\(typeName)' (one of \(names))")
            return nil
        }
        let minimum = reader.number("minimum")
        if minimum != nil && type != .integer && type != .number {
            reader.issue("minimum", "only integer and number fields have a minimum")
        }
        return InputField(type: type, description: reader.string("description"), minimum: minimum)
    }
}

extension JSONValue {
    /// Parses YAML or JSON text into a value.
    ///
    /// Both are read as hostile input: JSON strictly (``JSONParser``: no duplicate keys, integers
    /// within `Int64`, bounded nesting); YAML with anchors and aliases refused before anything is
    /// expanded (an alias bomb of a few hundred bytes expands to gigabytes), nesting bounded before
    /// the recursive composer runs, and the result held to the same depth as JSON.
    /// - Throws: The parser's error, or ``JSONValueConversionError``.
    public init(parsing text: String, format: WorkflowFormat) throws {
        switch format {
        case .json:
            self = try JSONParser.parse(text)
        case .yaml:
            let nesting = YAMLGuard.estimatedNesting(of: text)
            guard nesting <= YAMLGuard.maximumEstimatedNesting else {
                throw JSONValueConversionError(
                    description:
                        "nested too deeply (about \(nesting) levels of indentation, lists and brackets; at most \(YAMLGuard.maximumEstimatedNesting))"
                )
            }
            // The parser holds the anchors alive while the tree is checked (nodes refer to them weakly).
            let parser = try Yams.Parser(yaml: text)
            guard let root = try parser.singleRoot() else {
                self = .null
                return
            }
            if let anchor = YAMLGuard.firstAnchor(in: root) {
                throw JSONValueConversionError(
                    description: "anchors and aliases (&\(anchor), *\(anchor)) are not accepted in definitions: write each value out")
            }
            withExtendedLifetime(parser) {}
            self = try JSONValue(yamlObject: root.any, depth: 0)
        }
    }

    private init(yamlObject: Any?, depth: Int) throws {
        guard depth <= JSONParser.defaultMaximumDepth else {
            throw JSONValueConversionError(description: "nested deeper than \(JSONParser.defaultMaximumDepth) levels")
        }
        switch yamlObject {
        case nil, is NSNull:
            self = .null
        case let value as Bool:
            self = .bool(value)
        case let value as Int:
            self = .integer(Int64(value))
        case let value as Double:
            guard value.isFinite else { throw JSONValueConversionError(description: "\(value) is not a finite number") }
            self = .number(value)
        case let value as String:
            self = .string(value)
        case let value as Date:
            self = .string(value.formatted(.iso8601))
        case let value as [Any]:
            self = .array(try value.map { try JSONValue(yamlObject: $0, depth: depth + 1) })
        case let value as [String: Any]:
            self = .object(try value.mapValues { try JSONValue(yamlObject: $0, depth: depth + 1) })
        case let value as [AnyHashable: Any]:
            var members: [String: JSONValue] = [:]
            for (key, member) in value {
                guard let name = key.base as? String else {
                    throw JSONValueConversionError(description: "mapping key \(key) is not a string")
                }
                members[name] = try JSONValue(yamlObject: member, depth: depth + 1)
            }
            self = .object(members)
        default:
            throw JSONValueConversionError(description: "a YAML value of type \(type(of: yamlObject!)) has no JSON form")
        }
    }
}

/// A YAML value that has no JSON equivalent.
public struct JSONValueConversionError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Checks on YAML text made before and after composing it, so that hostile text costs no more
/// than its length to refuse.
enum YAMLGuard {
    /// Above any definition a person writes (they nest about ten levels), below where the
    /// composer's recursion could exhaust a thread's stack.
    static let maximumEstimatedNesting = 200

    /// An upper bound on how deeply the text nests: for each line, the column where its content
    /// starts (after indentation and `- `, `? `, `: ` indicators, each of which can open a level),
    /// plus how many flow brackets are open. Block nesting needs at least one column a level, and
    /// flow nesting a bracket, so the true depth is never more than this (brackets inside scalars
    /// only make it larger).
    static func estimatedNesting(of text: String) -> Int {
        var deepest = 0
        var openBrackets = 0
        var column = 0
        var atLineStart = true
        for byte in text.utf8 {
            if byte == 0x0A {
                atLineStart = true
                column = 0
                continue
            }
            if atLineStart {
                let isIndicator = (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: ":"))
                if byte == 0x20 || byte == 0x09 || isIndicator {
                    column += 1
                } else {
                    atLineStart = false
                    deepest = max(deepest, column + openBrackets)
                }
            }
            // Brackets inside quoted scalars are counted too: a quote cannot be told apart from an
            // apostrophe in a plain scalar without parsing, and counting more is the safe side.
            switch byte {
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                openBrackets += 1
                deepest = max(deepest, column + openBrackets)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): openBrackets = max(0, openBrackets - 1)
            default: break
            }
        }
        return deepest
    }

    /// The name of the first anchor met, depth first. An alias always refers to an anchored node,
    /// so the walk stops at the first alias's target at the latest: it never walks an expansion.
    static func firstAnchor(in node: Node) -> String? {
        if let anchor = node.anchor { return anchor.rawValue }
        switch node {
        case .scalar: return nil
        case .alias(let alias): return alias.anchor.rawValue
        case .sequence(let sequence):
            for element in sequence {
                if let found = firstAnchor(in: element) { return found }
            }
            return nil
        case .mapping(let mapping):
            for (key, value) in mapping {
                if let found = firstAnchor(in: key) ?? firstAnchor(in: value) { return found }
            }
            return nil
        }
    }
}
