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

extension SagaEvent {
    /// Cancel or the saga deadline: events that stop a running step.
    var isInterruption: Bool {
        switch self {
        case .cancel: true
        case .timerFired(let timer): timer.kind == .sagaDeadline
        default: false
        }
    }
}

/// Feeds random events to one saga and checks invariants after each.
struct Chaos {
    let definition: WorkflowDefinition
    var harness: SagaHarness
    var violation: String?
    var log: [String] = []

    private var terminalSnapshot: SagaInstance?
    private var pivotSucceeded = false
    /// Whether a cancel was applied: the saga must then end CANCELLED, not FAILED.
    private var cancelAccepted = false
    private var settled: Set<String> = []
    private var compensationsApplied: [String: Int] = [:]
    private var actionSucceeded: Set<String> = []
    /// Steps with an action attempt whose outcome is unknown and not yet settled by a definitive reply.
    private var unknownOutcome: Set<String> = []
    private var lastReply: StepReply?
    private var sentIDs: Set<String> = []
    /// Steps passed over because their condition did not hold.
    private var skippedByCondition: Set<String> = []
    private var started = false
    /// Where the latest compensation to start stood in the completion order.
    private var lastCompensationRank: (Int, Int)?

    init(definition: WorkflowDefinition, seed: UInt64) {
        self.definition = definition
        self.harness = SagaHarness(definition)
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
        check(event, transition, before: before)
    }

    private mutating func fail(_ message: String) {
        if violation == nil { violation = message }
    }

    private mutating func check(_ event: SagaEvent, _ transition: SagaTransition, before: SagaInstance) {
        let saga = harness.saga

        // A terminal saga stays terminal and unchanged.
        // (Except that a COMPLETED child saga undoes itself when its parent compensates it.)
        if case .parentCompensates = event, transition.outcome == .applied, terminalSnapshot?.status == .completed {
            if saga.parent == nil { fail("a saga with no parent was compensated for one") }
            terminalSnapshot = nil
        }
        if let snapshot = terminalSnapshot {
            if saga != snapshot { fail("a terminal saga changed") }
            if !transition.commands.isEmpty { fail("a terminal saga sent a command") }
        }
        if saga.status.isTerminal && terminalSnapshot == nil { terminalSnapshot = saga }

        // An event that is not applied changes nothing.
        if transition.outcome != .applied {
            if saga != before { fail("an ignored or rejected event changed the saga") }
            if !transition.commands.isEmpty { fail("an ignored or rejected event sent a command") }
        }

        if case .start = event, transition.outcome == .applied { started = true }
        for entry in transition.history where entry.kind == .stepSkipped && entry.detail.contains("condition does not hold") {
            if let step = entry.step { skippedByCondition.insert(step) }
        }

        // Signals: each (name, key) is kept once; a signal is consumed once, by the step that waits
        // for its name, and never un-consumed; a signal step sends nothing, and one that succeeded
        // holds the payload of the last signal it consumed.
        if Set(saga.signals.map { "\($0.name)/\($0.key)" }).count != saga.signals.count { fail("a signal was kept twice") }
        for (position, signal) in before.signals.enumerated() where signal.consumedBy != nil {
            if saga.signals[position].consumedBy != signal.consumedBy { fail("signal \(signal.name)/\(signal.key) was consumed again") }
        }
        // Every settlement of a signal step is the consumption of one signal not consumed before.
        let newlyConsumed = saga.signals.indices.filter { position in
            saga.signals[position].consumedBy != nil
                && (position >= before.signals.count || before.signals[position].consumedBy == nil)
        }.count
        let signalSettlements = transition.history.filter { entry in
            (entry.kind == .stepSucceeded || entry.kind == .stepFailed)
                && definition.allSteps.first(where: { $0.name == entry.step })?.signal != nil
        }.count
        if transition.outcome == .applied && newlyConsumed != signalSettlements {
            fail("\(signalSettlements) signal steps settled, but \(newlyConsumed) signals were newly consumed")
        }
        for signal in saga.signals {
            if let consumer = signal.consumedBy, definition.allSteps.first(where: { $0.name == consumer })?.signal != signal.name {
                fail("signal \(signal.name) was consumed by \(consumer), which does not wait for it")
            }
        }
        for (index, step) in definition.allSteps.enumerated() {
            guard let name = step.signal else { continue }
            if transition.commands.contains(where: { $0.step == step.name }) { fail("signal step \(step.name) sent a command") }
            if saga.steps[index].status == .succeeded {
                guard case .succeeded(let payload)? = saga.signals.last(where: { $0.consumedBy == step.name })?.outcome,
                    saga.steps[index].output == payload
                else {
                    fail("signal step \(step.name) succeeded without the payload of a signal '\(name)' it consumed")
                    continue
                }
            }
        }

        // A step skipped by its condition is never sent anything. A failure handler is never
        // compensated, and runs only once the compensation is over.
        for command in transition.commands {
            if skippedByCondition.contains(command.step) {
                fail("\(command.step) was skipped by its condition, yet sent \(command.messageID)")
            }
            guard let index = definition.stepIndex(named: command.step), definition.isFailureHandler(index) else { continue }
            if command.direction == .compensation { fail("failure handler \(command.step) was compensated") }
            if saga.status != .compensating { fail("failure handler \(command.step) ran while the saga was \(saga.status.rawValue)") }
            if saga.steps.prefix(definition.steps.count).contains(where: { $0.status == .compensating }) {
                fail("failure handler \(command.step) ran before the compensation was over")
            }
        }

        // No compensation past a succeeded pivot; never a compensation for the pivot or later steps.
        for command in transition.commands {
            if !sentIDs.insert(command.messageID).inserted { fail("message id \(command.messageID) was sent twice") }
            if command.idempotencyKey != StepCommand.idempotencyKey(sagaID: saga.id, step: command.step, direction: command.direction) {
                fail("unstable idempotency key")
            }
            guard command.direction == .compensation else { continue }
            if pivotSucceeded { fail("compensation of \(command.step) after the pivot succeeded") }
            if let pivot = definition.pivotIndex, definition.stepIndex(named: command.step)! >= pivot {
                fail("compensation sent for \(command.step), at or after the pivot")
            }
        }
        // A child step sends no command; its child is undone only before the pivot, never for a
        // failure handler, and never once the pivot succeeded.
        for effect in transition.effects {
            guard case .compensateChild(let child) = effect, let index = definition.stepIndex(named: child.step) else { continue }
            if pivotSucceeded { fail("the child of \(child.step) was compensated after the pivot succeeded") }
            if !undoable(index) { fail("the child of \(child.step) was compensated, but the step cannot be") }
        }
        for command in transition.commands where definition.allSteps.first(where: { $0.name == command.step })?.workflow != nil {
            fail("child step \(command.step) sent a command")
        }
        if let pivot = definition.pivotIndex, saga.steps[pivot].status == .succeeded { pivotSucceeded = true }

        // Track steps whose action may have taken effect unseen: a timeout, or an interruption in
        // flight (a cancel, the deadline, another branch's failure), until a definitive answer (a
        // reply, or news of a child's end) settles it. And count what succeeded and was undone.
        if transition.outcome == .applied {
            for entry in transition.history {
                guard let name = entry.step, let index = definition.stepIndex(named: name) else { continue }
                switch (entry.kind, entry.direction) {
                case (.stepTimedOut, .action): unknownOutcome.insert(name)
                case (.stepSucceeded, .action), (.stepFailed, .action):
                    unknownOutcome.remove(name)
                    if entry.kind == .stepSucceeded { actionSucceeded.insert(name) }
                case (.stepInterrupted, _):
                    let sent =
                        before.steps[index].awaitingReply
                        || transition.commands.contains { $0.step == name && $0.direction == .action }
                        || transition.effects.contains(where: { if case .startChild(let child) = $0 { child.step == name } else { false } })
                    if sent && definition.allSteps[index].signal == nil { unknownOutcome.insert(name) }
                case (.stepCompensated, _): compensationsApplied[name, default: 0] += 1
                default: break
                }
            }
        }

        // An attempt's final reply is applied at most once.
        if case .reply(let reply) = event, transition.outcome == .applied, reply.status != .inProgress {
            let key = "\(reply.step).\(reply.direction).\(reply.attempt)"
            if !settled.insert(key).inserted { fail("reply for \(key) applied twice") }
        }

        // At most one command is in flight, for the step under the cursor; only while a parallel
        // group runs forward, one for each of its branches.
        let inFlight = saga.steps.indices.filter { saga.steps[$0].awaitingReply || saga.steps[$0].retryAt != nil }
        let groups = Set(inFlight.map { definition.parallelGroup(containing: $0)?.name })
        let branches = inFlight.map { index in definition.parallelGroup(containing: index)?.branch(containing: index) }
        if inFlight.count > 1 {
            if groups.count > 1 || groups.first! == nil || Set(branches).count != inFlight.count {
                fail("steps \(inFlight) are in flight at once outside one parallel group's separate branches")
            }
            if saga.status != .processing || saga.direction != .action {
                fail("steps \(inFlight) are in flight at once while \(saga.status.rawValue) \(saga.direction.rawValue)")
            }
        } else if let only = inFlight.first, only != saga.cursor, definition.parallelGroup(containing: only) == nil {
            fail("step \(only) is in flight, but the cursor is \(saga.cursor)")
        }

        // Once the saga stops going forward, no step of the workflow starts (no branch goes on). (A
        // group's branches start in one transition, so one that fails as it starts, on a signal
        // that came early, ends one that was sent in the same transition.)
        for command in transition.commands where command.direction == .action {
            guard let index = definition.stepIndex(named: command.step), !definition.isFailureHandler(index) else { continue }
            if ![.pending, .processing, .suspended].contains(before.status) {
                fail("\(command.step) was sent while the saga was \(before.status.rawValue)")
            }
        }

        // A step of a parallel group gets its place in the completion order when it completes
        // (succeeds, or ends TIMED_OUT), after every earlier one, and keeps it.
        let earlierOrders = before.steps.compactMap(\.completionOrder).max() ?? 0
        for index in definition.steps.indices where definition.steps[index].branch != nil {
            let old = before.steps[index]
            let new = saga.steps[index]
            if let order = old.completionOrder {
                if new.completionOrder != order { fail("\(new.name)'s completion order changed from \(order)") }
                continue
            }
            // (From PENDING too: a signal step whose signal came early completes as it starts.)
            let completed =
                (old.status == .running || old.status == .pending) && [.succeeded, .timedOut, .compensating].contains(new.status)
            if completed && new.completionOrder == nil { fail("\(new.name) completed (\(new.status.rawValue)) with no completion order") }
            if let order = new.completionOrder {
                if !completed {
                    fail("\(new.name) got completion order \(order) going from \(old.status.rawValue) to \(new.status.rawValue)")
                }
                if order <= earlierOrders { fail("\(new.name) completed as \(order), not after \(earlierOrders)") }
            }
        }
        // Compensations start in reverse order of completion: step order, and completion order
        // inside a group. (A child step's compensation asks its child to undo itself.)
        let compensationStarts =
            transition.commands.filter { $0.direction == .compensation && $0.attempt == 1 }.map(\.step)
            + transition.effects.compactMap { effect -> String? in
                guard case .compensateChild(let child) = effect, let index = definition.stepIndex(named: child.step),
                    saga.steps[index].compensationAttempt == 1
                else { return nil }
                return child.step
            }
        for step in compensationStarts {
            let index = definition.stepIndex(named: step)!
            let rank =
                definition.parallelGroup(containing: index).map { ($0.range.lowerBound, saga.steps[index].completionOrder ?? -1) }
                ?? (index, 0)
            if let last = lastCompensationRank, !(rank < last) {
                fail("\(step) (completed \(rank)) was compensated after a step that completed earlier (\(last))")
            }
            lastCompensationRank = rank
        }
        if saga.status.isTerminal || saga.status == .suspended, !inFlight.isEmpty {
            fail("a \(saga.status.rawValue) saga still waits on step \(inFlight)")
        }

        if saga.status == .completed {
            if !saga.steps.prefix(definition.steps.count).allSatisfy({ $0.status == .succeeded || $0.status == .skipped }) {
                fail("COMPLETED with steps \(saga.steps.map(\.status))")
            }
            if !saga.steps.dropFirst(definition.steps.count).allSatisfy({ $0.status == .pending }) {
                fail("COMPLETED, yet a failure handler ran: \(saga.steps.map(\.status))")
            }
        }
        // A saga that started and ends FAILED or CANCELLED has been through every failure handler.
        if started, saga.status == .failed || saga.status == .cancelled {
            let handlers = saga.steps.dropFirst(definition.steps.count)
            if let open = handlers.first(where: { ![.succeeded, .failed, .timedOut, .skipped].contains($0.status) }) {
                fail("\(saga.status.rawValue) with failure handler \(open.name) \(open.status.rawValue)")
            }
        }
        if case .cancel = event, transition.outcome == .applied { cancelAccepted = true }
        if case .parentCompensates = event, transition.outcome == .applied, saga.cancellation != nil { cancelAccepted = true }
        // A saga ends CANCELLED exactly when it accepted a cancel, and is compensated either way.
        if saga.status == .cancelled && !cancelAccepted { fail("CANCELLED without an accepted cancel") }
        if saga.status == .failed && cancelAccepted { fail("FAILED after an accepted cancel (must end CANCELLED)") }
        if saga.status == .failed || saga.status == .cancelled { checkFailed(saga) }
    }

    private mutating func checkFailed(_ saga: SagaInstance) {
        for (index, step) in saga.steps.enumerated() where undoable(index) {
            if skippedByCondition.contains(step.name) && step.status != .skipped {
                fail("\(step.name) was skipped by its condition but ended \(step.status.rawValue)")
            }
            if step.status == .succeeded || step.status == .timedOut {
                fail("FAILED with \(step.name) \(step.status.rawValue) and never compensated")
            }
            let applied = compensationsApplied[step.name, default: 0]
            if step.status == .compensated && applied != 1 {
                fail("\(step.name) compensated \(applied) times")
            }
            if actionSucceeded.contains(step.name) && step.status != .compensated && step.status != .skipped {
                fail("\(step.name) succeeded but ended \(step.status.rawValue)")
            }
            if unknownOutcome.contains(step.name) && step.status != .compensated && step.status != .skipped {
                fail("\(step.name) may have taken effect (an attempt timed out) but ended \(step.status.rawValue)")
            }
        }
    }

    /// Whether step `index` has a way back: a compensation, or, for a child step before the pivot,
    /// its child's.
    private func undoable(_ index: Int) -> Bool {
        guard index < definition.steps.count else { return false }
        let step = definition.steps[index]
        return step.compensate != nil || (step.workflow != nil && definition.pivotIndex.map { index < $0 } ?? true)
    }

    mutating func checkFinal() {
        let saga = harness.saga
        for (name, count) in compensationsApplied where count > 1 { fail("\(name) compensated \(count) times") }
        if saga.status == .failed || saga.status == .cancelled { checkFailed(saga) }
    }
}
