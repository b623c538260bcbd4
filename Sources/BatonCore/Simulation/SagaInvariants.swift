/// The promises Baton's state machine keeps, checked after every event of one saga: the simulator
/// (`baton workflows simulate`) and the property tests feed every transition through it.
///
/// It watches from outside: it sees the events, the transitions and the saga before and after,
/// and keeps its own account (what succeeded, what timed out, what was compensated, whether the
/// pivot passed), so a state machine that lies to itself is still caught.
public struct SagaInvariants: Sendable {
    /// One promise, named for reports.
    public enum Invariant: String, Sendable, Hashable, CaseIterable, Codable {
        case terminalAbsorbs = "terminal-absorbs"
        case ignoredChangesNothing = "ignored-changes-nothing"
        case compensatedExactlyOnce = "compensated-exactly-once"
        case neverPastPivot = "never-past-pivot"
        case skippedNeverRun = "skipped-never-run"
        case replyAppliedOnce = "reply-applied-once"
        case oneStepInFlight = "one-step-in-flight"
        case compensationOrder = "compensation-order"
        case failureHandlersLast = "failure-handlers-last"
        case signalsConsumedOnce = "signals-consumed-once"
        case commandsIdentified = "commands-identified"
        case endStatesConsistent = "end-states-consistent"
        case cancelEndsCancelled = "cancel-ends-cancelled"
        /// Checked by the simulator, which knows when nothing is left to happen.
        case settles

        /// What the promise says, in a sentence.
        public var summary: String {
            switch self {
            case .terminalAbsorbs: "a COMPLETED, FAILED or CANCELLED saga never changes and sends nothing"
            case .ignoredChangesNothing: "an ignored or refused event (stale, duplicate, late) changes nothing"
            case .compensatedExactlyOnce:
                "on failure, every step that succeeded or timed out and has a compensation is compensated exactly once"
            case .neverPastPivot: "nothing is compensated once the pivot succeeded, and never the pivot or a later step"
            case .skippedNeverRun: "a step skipped by its condition is never sent anything, nor compensated"
            case .replyAppliedOnce: "each attempt's final reply is applied at most once"
            case .oneStepInFlight: "one step is in flight at a time (one per branch in a parallel group), none once stopped"
            case .compensationOrder: "compensations run in the reverse of the order the steps completed"
            case .failureHandlersLast: "failure handlers run after the compensation and are never compensated"
            case .signalsConsumedOnce: "each signal is kept once and consumed once, by the step that waits for it"
            case .commandsIdentified: "every command has its own message id and its leg's stable idempotency key"
            case .endStatesConsistent: "COMPLETED means every step succeeded or was skipped; FAILED means every handler ran"
            case .cancelEndsCancelled: "a saga ends CANCELLED exactly when it accepted a cancel"
            case .settles: "a saga never waits with nothing left to wake it"
            }
        }
    }

    /// A broken promise: which, and what happened.
    public struct Violation: Sendable, Hashable {
        public var invariant: Invariant
        public var message: String
    }

    public let definition: WorkflowDefinition
    /// The first promise broken, if any (what follows a first violation is noise).
    public private(set) var violation: Violation?

    private var terminalSnapshot: SagaInstance?
    private var pivotSucceeded = false
    /// Whether a cancel was applied: the saga must then end CANCELLED, not FAILED.
    private var cancelAccepted = false
    private var settled: Set<String> = []
    private var compensationsApplied: [String: Int] = [:]
    private var actionSucceeded: Set<String> = []
    /// Steps with an action attempt whose outcome is unknown and not yet settled by a definitive reply.
    private var unknownOutcome: Set<String> = []
    private var sentIDs: Set<String> = []
    /// Steps passed over because their condition did not hold.
    private var skippedByCondition: Set<String> = []
    private var started = false
    /// Where the latest compensation to start stood in the completion order.
    private var lastCompensationRank: (Int, Int)?

    public init(definition: WorkflowDefinition) {
        self.definition = definition
    }

    /// Records a broken promise found outside (the simulator's own checks).
    public mutating func fail(_ invariant: Invariant, _ message: String) {
        if violation == nil { violation = Violation(invariant: invariant, message: message) }
    }

    /// Checks what one event did: `before` and `saga` are the saga around `transition`.
    public mutating func observe(_ event: SagaEvent, _ transition: SagaTransition, before: SagaInstance, after saga: SagaInstance) {

        // A terminal saga stays terminal and unchanged.
        // (Except that a COMPLETED child saga undoes itself when its parent compensates it.)
        if case .parentCompensates = event, transition.outcome == .applied, terminalSnapshot?.status == .completed {
            if saga.parent == nil { fail(.terminalAbsorbs, "a saga with no parent was compensated for one") }
            terminalSnapshot = nil
        }
        if let snapshot = terminalSnapshot {
            if saga != snapshot { fail(.terminalAbsorbs, "a terminal saga changed") }
            if !transition.commands.isEmpty { fail(.terminalAbsorbs, "a terminal saga sent a command") }
        }
        if saga.status.isTerminal && terminalSnapshot == nil { terminalSnapshot = saga }

        // An event that is not applied changes nothing.
        if transition.outcome != .applied {
            if saga != before { fail(.ignoredChangesNothing, "an ignored or rejected event changed the saga") }
            if !transition.commands.isEmpty { fail(.ignoredChangesNothing, "an ignored or rejected event sent a command") }
        }

        if case .start = event, transition.outcome == .applied { started = true }
        for entry in transition.history where entry.kind == .stepSkipped && entry.detail.contains("condition does not hold") {
            if let step = entry.step { skippedByCondition.insert(step) }
        }

        // Signals: each (name, key) is kept once; a signal is consumed once, by the step that waits
        // for its name, and never un-consumed; a signal step sends nothing, and one that succeeded
        // holds the payload of the last signal it consumed.
        if Set(saga.signals.map { "\($0.name)/\($0.key)" }).count != saga.signals.count {
            fail(.signalsConsumedOnce, "a signal was kept twice")
        }
        for (position, signal) in before.signals.enumerated() where signal.consumedBy != nil {
            if saga.signals[position].consumedBy != signal.consumedBy {
                fail(.signalsConsumedOnce, "signal \(signal.name)/\(signal.key) was consumed again")
            }
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
            fail(.signalsConsumedOnce, "\(signalSettlements) signal steps settled, but \(newlyConsumed) signals were newly consumed")
        }
        for signal in saga.signals {
            if let consumer = signal.consumedBy, definition.allSteps.first(where: { $0.name == consumer })?.signal != signal.name {
                fail(.signalsConsumedOnce, "signal \(signal.name) was consumed by \(consumer), which does not wait for it")
            }
        }
        for (index, step) in definition.allSteps.enumerated() {
            guard let name = step.signal else { continue }
            if transition.commands.contains(where: { $0.step == step.name }) {
                fail(.signalsConsumedOnce, "signal step \(step.name) sent a command")
            }
            if saga.steps[index].status == .succeeded {
                guard case .succeeded(let payload)? = saga.signals.last(where: { $0.consumedBy == step.name })?.outcome,
                    saga.steps[index].output == payload
                else {
                    fail(.signalsConsumedOnce, "signal step \(step.name) succeeded without the payload of a signal '\(name)' it consumed")
                    continue
                }
            }
        }

        // A step skipped by its condition is never sent anything. A failure handler is never
        // compensated, and runs only once the compensation is over.
        for command in transition.commands {
            if skippedByCondition.contains(command.step) {
                fail(.skippedNeverRun, "\(command.step) was skipped by its condition, yet sent \(command.messageID)")
            }
            guard let index = definition.stepIndex(named: command.step), definition.isFailureHandler(index) else { continue }
            if command.direction == .compensation { fail(.failureHandlersLast, "failure handler \(command.step) was compensated") }
            if saga.status != .compensating {
                fail(.failureHandlersLast, "failure handler \(command.step) ran while the saga was \(saga.status.rawValue)")
            }
            if saga.steps.prefix(definition.steps.count).contains(where: { $0.status == .compensating }) {
                fail(.failureHandlersLast, "failure handler \(command.step) ran before the compensation was over")
            }
        }

        // No compensation past a succeeded pivot; never a compensation for the pivot or later steps.
        for command in transition.commands {
            if !sentIDs.insert(command.messageID).inserted { fail(.commandsIdentified, "message id \(command.messageID) was sent twice") }
            if command.idempotencyKey != StepCommand.idempotencyKey(sagaID: saga.id, step: command.step, direction: command.direction) {
                fail(.commandsIdentified, "unstable idempotency key")
            }
            guard command.direction == .compensation else { continue }
            if pivotSucceeded { fail(.neverPastPivot, "compensation of \(command.step) after the pivot succeeded") }
            if let pivot = definition.pivotIndex, definition.stepIndex(named: command.step)! >= pivot {
                fail(.neverPastPivot, "compensation sent for \(command.step), at or after the pivot")
            }
        }
        // A child step sends no command; its child is undone only before the pivot, never for a
        // failure handler, and never once the pivot succeeded.
        for effect in transition.effects {
            guard case .compensateChild(let child) = effect, let index = definition.stepIndex(named: child.step) else { continue }
            if pivotSucceeded { fail(.neverPastPivot, "the child of \(child.step) was compensated after the pivot succeeded") }
            if !undoable(index) { fail(.neverPastPivot, "the child of \(child.step) was compensated, but the step cannot be") }
        }
        for command in transition.commands where definition.allSteps.first(where: { $0.name == command.step })?.workflow != nil {
            fail(.commandsIdentified, "child step \(command.step) sent a command")
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
            if !settled.insert(key).inserted { fail(.replyAppliedOnce, "reply for \(key) applied twice") }
        }

        // At most one command is in flight, for the step under the cursor; only while a parallel
        // group runs forward, one for each of its branches.
        let inFlight = saga.steps.indices.filter { saga.steps[$0].awaitingReply || saga.steps[$0].retryAt != nil }
        let groups = Set(inFlight.map { definition.parallelGroup(containing: $0)?.name })
        let branches = inFlight.map { index in definition.parallelGroup(containing: index)?.branch(containing: index) }
        if inFlight.count > 1 {
            if groups.count > 1 || groups.first! == nil || Set(branches).count != inFlight.count {
                fail(.oneStepInFlight, "steps \(inFlight) are in flight at once outside one parallel group's separate branches")
            }
            if saga.status != .processing || saga.direction != .action {
                fail(.oneStepInFlight, "steps \(inFlight) are in flight at once while \(saga.status.rawValue) \(saga.direction.rawValue)")
            }
        } else if let only = inFlight.first, only != saga.cursor, definition.parallelGroup(containing: only) == nil {
            fail(.oneStepInFlight, "step \(only) is in flight, but the cursor is \(saga.cursor)")
        }

        // Once the saga stops going forward, no step of the workflow starts (no branch goes on). (A
        // group's branches start in one transition, so one that fails as it starts, on a signal
        // that came early, ends one that was sent in the same transition.)
        for command in transition.commands where command.direction == .action {
            guard let index = definition.stepIndex(named: command.step), !definition.isFailureHandler(index) else { continue }
            if ![.pending, .processing, .suspended].contains(before.status) {
                fail(.oneStepInFlight, "\(command.step) was sent while the saga was \(before.status.rawValue)")
            }
        }

        // A step of a parallel group gets its place in the completion order when it completes
        // (succeeds, or ends TIMED_OUT), after every earlier one, and keeps it.
        let earlierOrders = before.steps.compactMap(\.completionOrder).max() ?? 0
        for index in definition.steps.indices where definition.steps[index].branch != nil {
            let old = before.steps[index]
            let new = saga.steps[index]
            if let order = old.completionOrder {
                if new.completionOrder != order { fail(.compensationOrder, "\(new.name)'s completion order changed from \(order)") }
                continue
            }
            // (From PENDING too: a signal step whose signal came early completes as it starts.)
            let completed =
                (old.status == .running || old.status == .pending) && [.succeeded, .timedOut, .compensating].contains(new.status)
            if completed && new.completionOrder == nil {
                fail(.compensationOrder, "\(new.name) completed (\(new.status.rawValue)) with no completion order")
            }
            if let order = new.completionOrder {
                if !completed {
                    fail(
                        .compensationOrder,
                        "\(new.name) got completion order \(order) going from \(old.status.rawValue) to \(new.status.rawValue)")
                }
                if order <= earlierOrders { fail(.compensationOrder, "\(new.name) completed as \(order), not after \(earlierOrders)") }
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
                fail(.compensationOrder, "\(step) (completed \(rank)) was compensated after a step that completed earlier (\(last))")
            }
            lastCompensationRank = rank
        }
        if saga.status.isTerminal || saga.status == .suspended, !inFlight.isEmpty {
            fail(.oneStepInFlight, "a \(saga.status.rawValue) saga still waits on step \(inFlight)")
        }

        if saga.status == .completed {
            if !saga.steps.prefix(definition.steps.count).allSatisfy({ $0.status == .succeeded || $0.status == .skipped }) {
                fail(.endStatesConsistent, "COMPLETED with steps \(saga.steps.map(\.status))")
            }
            if !saga.steps.dropFirst(definition.steps.count).allSatisfy({ $0.status == .pending }) {
                fail(.endStatesConsistent, "COMPLETED, yet a failure handler ran: \(saga.steps.map(\.status))")
            }
        }
        // A saga that started and ends FAILED or CANCELLED has been through every failure handler.
        if started, saga.status == .failed || saga.status == .cancelled {
            let handlers = saga.steps.dropFirst(definition.steps.count)
            if let open = handlers.first(where: { ![.succeeded, .failed, .timedOut, .skipped].contains($0.status) }) {
                fail(.endStatesConsistent, "\(saga.status.rawValue) with failure handler \(open.name) \(open.status.rawValue)")
            }
        }
        if case .cancel = event, transition.outcome == .applied { cancelAccepted = true }
        if case .parentCompensates = event, transition.outcome == .applied, saga.cancellation != nil { cancelAccepted = true }
        // A saga ends CANCELLED exactly when it accepted a cancel, and is compensated either way.
        if saga.status == .cancelled && !cancelAccepted { fail(.cancelEndsCancelled, "CANCELLED without an accepted cancel") }
        if saga.status == .failed && cancelAccepted { fail(.cancelEndsCancelled, "FAILED after an accepted cancel (must end CANCELLED)") }
        if saga.status == .failed || saga.status == .cancelled { checkFailed(saga) }
    }

    private mutating func checkFailed(_ saga: SagaInstance) {
        for (index, step) in saga.steps.enumerated() where undoable(index) {
            if skippedByCondition.contains(step.name) && step.status != .skipped {
                fail(.skippedNeverRun, "\(step.name) was skipped by its condition but ended \(step.status.rawValue)")
            }
            if step.status == .succeeded || step.status == .timedOut {
                fail(.compensatedExactlyOnce, "FAILED with \(step.name) \(step.status.rawValue) and never compensated")
            }
            let applied = compensationsApplied[step.name, default: 0]
            if step.status == .compensated && applied != 1 {
                fail(.compensatedExactlyOnce, "\(step.name) compensated \(applied) times")
            }
            if actionSucceeded.contains(step.name) && step.status != .compensated && step.status != .skipped {
                fail(.compensatedExactlyOnce, "\(step.name) succeeded but ended \(step.status.rawValue)")
            }
            if unknownOutcome.contains(step.name) && step.status != .compensated && step.status != .skipped {
                fail(.compensatedExactlyOnce, "\(step.name) may have taken effect (an attempt timed out) but ended \(step.status.rawValue)")
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

    /// Checks the saga as it ended, once nothing more will happen to it.
    public mutating func checkFinal(_ saga: SagaInstance) {
        for (name, count) in compensationsApplied where count > 1 { fail(.compensatedExactlyOnce, "\(name) compensated \(count) times") }
        if saga.status == .failed || saga.status == .cancelled { checkFailed(saga) }
    }
}
