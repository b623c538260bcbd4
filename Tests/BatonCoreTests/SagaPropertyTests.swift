import BatonCore
import Foundation
import PropertyBased
import Testing

/// Property-based tests: random workflows driven by random event sequences (replies in any order,
/// duplicates, stale attempts, timers old and new, cancels, operator actions), checking after every
/// event the invariants Baton promises.
@Suite("Saga state machine properties")
struct SagaPropertyTests {
    @Test("invariants hold over random event sequences")
    func invariants() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...9_999).array(of: 1...120)) {
            shape, choices in
            var chaos = Chaos(definition: Self.randomDefinition(shape: shape), seed: UInt64(shape))
            for choice in choices {
                chaos.step(choice)
                if let violation = chaos.violation {
                    Issue.record(
                        "\(violation)\nworkflow: \(chaos.definition.allSteps.map { "\($0.name)\($0.pivot ? "(pivot)" : "")\($0.compensate == nil ? "" : "+c")\($0.branch.map { " in \($0.group)/\($0.name)\($0.when.map { " when \($0)" } ?? "")" } ?? "")\($0.when.map { " when \($0)" } ?? "")" })\nhistory:\n\(chaos.log.joined(separator: "\n"))"
                    )
                    return
                }
            }
            chaos.checkFinal()
            if let violation = chaos.violation { Issue.record("\(violation)\nhistory:\n\(chaos.log.joined(separator: "\n"))") }
        }
    }

    @Test("with only well-behaved replies every saga ends COMPLETED or FAILED")
    func wellBehavedSagasTerminate() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...9_999).array(of: 1...60)) {
            shape, choices in
            let definition = Self.randomDefinition(shape: shape)
            var chaos = Chaos(definition: definition, seed: UInt64(shape))
            chaos.apply(.start)
            // Answer each command in turn: succeeded, or (for an action before the pivot) failed.
            // With no timeouts, retries or failing compensations, the saga must finish.
            var iterator = choices.makeIterator()
            for _ in 0..<(definition.allSteps.count * 2 + 2) where !chaos.harness.status.isTerminal {
                // Answer one of the steps waiting (several do while a parallel group runs).
                let saga = chaos.harness.saga
                let waiting = saga.steps.indices.filter { saga.steps[$0].awaitingReply }
                let current = waiting.isEmpty ? saga.cursor : waiting[(iterator.next() ?? 0) % waiting.count]
                // A signal step waits for its signal rather than a reply: send it.
                if let name = definition.allSteps[current].signal, saga.steps[current].awaitingReply {
                    let beforePivot = definition.pivotIndex.map { current <= $0 } ?? true
                    let fail = beforePivot && (iterator.next() ?? 0) % 4 == 0
                    let outcome: SagaSignal.Outcome = fail ? .failed(code: "no", message: "refused") : .succeeded(payload: ["entry": "x"])
                    chaos.apply(.signal(SagaSignal(name: name, key: "k", outcome: outcome, receivedAt: .distantPast)))
                    continue
                }
                // A child step waits for news of its child: its end (or, compensating, its undoing).
                if definition.allSteps[current].workflow != nil, saga.steps[current].awaitingReply {
                    let compensating = saga.steps[current].status == .compensating
                    let beforePivot = definition.pivotIndex.map { current <= $0 } ?? true
                    let fail = !compensating && beforePivot && (iterator.next() ?? 0) % 4 == 0
                    let result: ChildReport.Result =
                        compensating ? .cancelled(message: "undone") : fail ? .failed(message: "no") : .completed(output: ["entry": "x"])
                    chaos.apply(.child(ChildReport(step: saga.steps[current].name, childID: "c", result: result)))
                    continue
                }
                let command = chaos.harness.sent.last { $0.step == saga.steps[current].name } ?? chaos.harness.lastCommand
                let index = definition.stepIndex(named: command.step)!
                let beforePivot = definition.pivotIndex.map { index <= $0 } ?? true
                let fail = command.direction == .action && beforePivot && (iterator.next() ?? 0) % 4 == 0
                chaos.apply(
                    .reply(
                        StepReply(
                            step: command.step,
                            direction: command.direction,
                            attempt: command.attempt,
                            status: fail ? .failed(code: "no", message: "refused") : .succeeded(output: ["entry": "x"])
                        )
                    )
                )
            }
            #expect(chaos.harness.status.isTerminal, "ended \(chaos.harness.status)")
            chaos.checkFinal()
            if let violation = chaos.violation { Issue.record("\(violation)") }
        }
    }

    /// A workflow of 1–6 steps, maybe with a pivot, compensations on some steps before it, signal
    /// and child steps (never the pivot), conditions on some steps other than the pivot (over the input, which
    /// holds amount 100, or an earlier step's status), maybe a parallel group of 2–3 branches before
    /// the pivot (some branches conditional), and 0–2 failure handlers, some conditional. Every
    /// definition it makes validates.
    static func randomDefinition(shape: Int) -> WorkflowDefinition {
        var bits = SeededRandomNumberGenerator(seed: UInt64(shape))
        let count = Int.random(in: 1...6, using: &bits)
        let pivot: Int? = Bool.random(using: &bits) ? Int.random(in: 0..<count, using: &bits) : nil
        func condition(after index: Int) -> StepCondition? {
            switch Int.random(in: 0..<6, using: &bits) {
            case 0: try! StepCondition(parsing: "input.amount >= \(Bool.random(using: &bits) ? 50 : 150)")
            case 1 where index > 0: try! StepCondition(parsing: "steps.s\(Int.random(in: 0..<index, using: &bits)).status == 'SUCCEEDED'")
            default: nil
            }
        }
        var steps = (0..<count).map { index in
            let compensated = pivot.map { index < $0 } ?? true
            var step = Workflows.step(
                "s\(index)",
                compensated: compensated && Int.random(in: 0..<4, using: &bits) != 0,
                pivot: index == pivot,
                attempts: Int.random(in: 1...3, using: &bits)
            )
            if index != pivot {
                switch Int.random(in: 0..<10, using: &bits) {
                case 0, 1: step = .waiting(for: "signal-\(index)", name: "s\(index)", timeout: .seconds(20))
                case 2, 3:
                    step = .child(
                        "other", name: "s\(index)", input: ["n": "{{input.amount}}"], timeout: .seconds(30),
                        retry: RetryPolicy(
                            maxAttempts: Int.random(in: 1...2, using: &bits), backoff: .fixed, initial: .seconds(1), maxDelay: .seconds(1),
                            jitter: 0))
                default: break
                }
            }
            if index != pivot { step.when = condition(after: index) }
            return step
        }
        // A parallel group over 2–4 consecutive steps before the pivot, cut into 2–3 branches.
        let room = pivot ?? count
        if room >= 2 && Int.random(in: 0..<3, using: &bits) != 0 {
            let length = Int.random(in: 2...min(4, room), using: &bits)
            let start = Int.random(in: 0...(room - length), using: &bits)
            let branchCount = Int.random(in: 2...min(3, length), using: &bits)
            var cuts = Set<Int>()
            while cuts.count < branchCount - 1 { cuts.insert(Int.random(in: (start + 1)..<(start + length), using: &bits)) }
            var branch = 0
            var branchStart = start
            for index in start..<(start + length) {
                if cuts.contains(index) {
                    branch += 1
                    branchStart = index
                }
                let when: StepCondition? =
                    index == branchStart && Int.random(in: 0..<4, using: &bits) == 0
                    ? try! StepCondition(parsing: "input.amount >= \(Bool.random(using: &bits) ? 50 : 150)") : nil
                steps[index].branch = BranchPlacement(group: "g", name: "b\(branch)", when: when ?? steps[branchStart].branch?.when)
                // A step of a branch reads only the steps before the group and before it in its branch.
                if let condition = steps[index].when,
                    condition.references.contains(where: { reference in
                        guard case .stepStatus(let name) = reference, let other = Int(name.dropFirst()) else { return false }
                        return other >= start && other < branchStart
                    })
                {
                    steps[index].when = nil
                }
            }
        }
        let handlers = (0..<Int.random(in: 0...2, using: &bits)).map { index in
            var handler =
                Int.random(in: 0..<4, using: &bits) == 0
                ? .child("other", name: "h\(index)", timeout: .seconds(30), retry: .once)
                : Workflows.step("h\(index)", compensated: false, attempts: Int.random(in: 1...2, using: &bits))
            handler.when = condition(after: count)
            return handler
        }
        let definition = WorkflowDefinition(
            name: "random", version: 1, deadline: Bool.random(using: &bits) ? .minutes(2) : nil, steps: steps, failureHandlers: handlers)
        precondition(definition.validate().isEmpty, "\(definition.validate())")
        return definition
    }
}

/// Feeds random events to one saga and checks invariants after each.
struct Chaos {
    let definition: WorkflowDefinition
    var harness: SagaHarness
    var log: [String] = []

    private var invariants: SagaInvariants
    private var lastReply: StepReply?
    /// The first promise broken, if any.
    var violation: String? { invariants.violation.map { "\($0.invariant.rawValue): \($0.message)" } }

    init(definition: WorkflowDefinition, seed: UInt64) {
        self.definition = definition
        self.harness = SagaHarness(definition)
        self.invariants = SagaInvariants(definition: definition)
        self.harness.random = SeededRandomNumberGenerator(seed: seed)
        // One saga in three is a child saga, which its parent may ask to undo itself.
        if seed % 3 == 0 {
            let saga = SagaInstance(
                id: "saga-1", definition: definition, input: ["amount": 100], parent: SagaParent(sagaID: "parent-1", step: "p", depth: 1),
                now: harness.now)
            self.harness.machine = try! SagaStateMachine(definition: definition, saga: saga)
        }
    }

    mutating func step(_ choice: Int) {
        let argument = choice / 10
        let event: SagaEvent
        switch choice % 10 {
        case 0 where harness.status == .pending:
            event = .start
        case 0, 1, 2, 3:
            // Reply to some command: usually the latest, sometimes an older (stale) one.
            guard !harness.sent.isEmpty else { return harness.advance(1) }
            let pick = argument % 3 == 0 ? argument % harness.sent.count : harness.sent.count - 1
            let command = harness.sent[pick]
            let status: ReplyStatus =
                switch argument % 7 {
                case 0, 1, 2: .succeeded(output: ["entry": .string("\(command.step)-\(command.attempt)")])
                case 3: .failed(code: "refused", message: "business failure")
                case 4: .retry(after: argument % 2 == 0 ? nil : .seconds(2), message: "transient")
                case 5: .inProgress
                default: .retry(after: nil, message: "transient")
                }
            event = .reply(StepReply(step: command.step, direction: command.direction, attempt: command.attempt, status: status))
        case 4, 5:
            // Fire a timer: usually the latest, sometimes an old one.
            guard !harness.timers.isEmpty else { return harness.advance(1) }
            let pick = argument % 4 == 0 ? argument % harness.timers.count : harness.timers.count - 1
            let timer = harness.timers[pick]
            harness.now = max(harness.now, timer.due)
            event = .timerFired(timer)
        case 6 where argument % 2 == 0:
            guard let reply = lastReply else { return harness.advance(1) }
            event = .reply(reply)
        case 6 where argument % 3 == 1:
            // News of a child: an end, or a refusal to start or undo it, for a child step (or a
            // step that has no child).
            let names = definition.allSteps.filter { $0.workflow != nil }.map(\.name) + ["s0"]
            let result: ChildReport.Result =
                switch (argument / 3) % 4 {
                case 0: .completed(output: ["entry": .string("child-\(argument)")])
                case 1: .failed(message: "it failed")
                case 2: .cancelled(message: "it was cancelled")
                default: .refused(message: "no such workflow")
                }
            let direction: StepDirection? =
                if case .refused = result { (argument / 12) % 2 == 0 ? .action : .compensation } else { nil }
            event = .child(
                ChildReport(step: names[(argument / 24) % names.count], childID: "child-1", result: result, direction: direction))
        case 6:
            // A signal, for one of the workflow's (or an unknown) name, with one of a few keys:
            // early, late, duplicated, refused.
            let names = definition.allSteps.compactMap(\.signal) + ["unknown"]
            let name = names[(argument / 2) % names.count]
            let outcome: SagaSignal.Outcome =
                argument % 5 == 1 ? .failed(code: "declined", message: "no") : .succeeded(payload: ["n": .integer(Int64(argument))])
            event = .signal(SagaSignal(name: name, key: "key-\((argument / 7) % 3)", outcome: outcome, receivedAt: .distantPast))
        case 7 where argument % 2 == 1:
            event = .parentCompensates(reason: "random compensation by the parent")
        case 7:
            event = .cancel(reason: "random cancel")
        case 8:
            let stuck = harness.saga.steps[harness.saga.cursor].name
            let action: OperatorAction =
                switch argument % 4 {
                case 0: .retry(reason: "operator retry")
                case 1: .skip(step: argument % 8 == 1 ? "s0" : stuck, reason: "operator skip")
                case 2: .resolve(reason: "operator resolve")
                default: .compensate(reason: "operator compensate")
                }
            event = .operatorAction(action)
        default:
            harness.advance(Double(argument % 30))
            return
        }
        apply(event)
    }

    mutating func apply(_ event: SagaEvent) {
        let before = harness.saga
        let transition = harness.handle(event)
        if case .reply(let reply) = event { lastReply = reply }
        log.append("\(event) -> \(transition.outcome) [\(harness.status.rawValue)]")
        invariants.observe(event, transition, before: before, after: harness.saga)
    }

    mutating func checkFinal() { invariants.checkFinal(harness.saga) }
}
