import BatonCore
import BatonStore
import Foundation

/// Child sagas: what a committed transition asks of a step's child (start it, undo it), and news of
/// a finished child for its parent. Each is its own transaction through the kernel, after the
/// commit that caused it. None needs to survive a crash: the parent's step timeout asks again, and
/// the child's idempotency key (``BatonCore/ChildSaga/idempotencyKey(parentID:step:)``) makes the
/// new attempt find the same child, and its end if it has one.
extension SagaRunner {
    /// One piece of child work a commit caused.
    enum ChildWork: Sendable {
        case start(parent: SagaInstance, ChildSaga)
        case compensate(parent: SagaInstance, ChildSaga)
        /// A child saga finished: tell its parent.
        case report(SagaInstance)
    }

    /// The child work of a committed transition, in the order its effects asked for it.
    static func childWork(of transition: SagaTransition, saga: SagaInstance) -> [ChildWork] {
        transition.effects.compactMap { effect in
            switch effect {
            case .startChild(let child): .start(parent: saga, child)
            case .compensateChild(let child): .compensate(parent: saga, child)
            case .finished: saga.parent == nil ? nil : .report(saga)
            default: nil
            }
        }
    }

    /// Does child work, one piece after another. A failure is logged and left to the parent's step
    /// timeout, which asks again.
    func perform(_ work: [ChildWork]) async {
        for item in work {
            do {
                switch item {
                case .start(let parent, let child): try await start(child, of: parent)
                case .compensate(let parent, let child): try await compensate(child, of: parent)
                case .report(let child): try await report(child)
                }
            } catch {
                log.logger.warning(
                    "child saga work failed; the parent's step timeout will ask again",
                    metadata: ["error": "\(StoreErrors.describe(error))"])
            }
        }
    }

    /// Starts a step's child, or finds the one an earlier attempt started; a child that has already
    /// ended is reported at once.
    private func start(_ child: ChildSaga, of parent: SagaInstance) async throws {
        let link = Self.link(to: parent, step: child.step)
        guard link.depth <= SagaParent.maximumDepth else {
            return try await refuse(
                child, of: parent, .action, "child sagas nest at most \(SagaParent.maximumDepth) deep; this one would be \(link.depth)")
        }
        let creation: SagaCreation
        do {
            creation = try await submit(
                workflow: child.workflow, input: child.input,
                idempotencyKey: ChildSaga.idempotencyKey(parentID: parent.id, step: child.step), correlationID: parent.correlationID,
                traceparent: parent.traceparent, parent: link)
        } catch let error as SubmissionError {
            return try await refuse(child, of: parent, .action, error.description)
        }
        // A child created now reports its own end from its commit; one found was reported when it
        // ended, but that report may be the one a crash lost.
        if case .existing(let record) = creation, record.saga.status.isTerminal { try await report(record.saga) }
    }

    /// Asks a step's child to undo what it did. When no child exists (it was never started, or its
    /// start is still on its way), one is created without starting it and cancelled, so a late start
    /// finds it finished and does nothing.
    private func compensate(_ child: ChildSaga, of parent: SagaInstance) async throws {
        let key = ChildSaga.idempotencyKey(parentID: parent.id, step: child.step)
        var childID = try await store.sagaID(idempotencyKey: key)
        if childID == nil {
            do {
                let link = Self.link(to: parent, step: child.step)
                childID =
                    try await submit(
                        workflow: child.workflow, input: child.input, idempotencyKey: key, correlationID: parent.correlationID,
                        traceparent: parent.traceparent, parent: link, start: false
                    ).record.saga.id
            } catch let error as SubmissionError {
                // No child can exist: nothing was done, so nothing is left to undo.
                let news = ChildReport(step: child.step, childID: nil, result: .cancelled(message: "no child saga was started: \(error)"))
                _ = try await apply(.child(news), to: parent.id)
                return
            }
        }
        guard let childID else { return }
        let (record, outcome) = try await apply(
            .parentCompensates(reason: "step '\(child.step)' is compensated"), toChild: childID)
        if case .rejected(let reason) = outcome { return try await refuse(child, of: parent, .compensation, reason, childID: childID) }
        // Undone already (or at once): say so. A child still undoing reports its end itself.
        if record.saga.status == .failed || record.saga.status == .cancelled { try await report(record.saga) }
    }

    private func apply(_ event: SagaEvent, toChild id: String) async throws -> (SagaRecord, SagaTransition.Outcome) {
        guard case .updated(let record, let transition) = try await apply(event, to: id) else { throw SagaStoreError.sagaNotFound(id: id) }
        return (record, transition.outcome)
    }

    /// Tells the parent that its step's child could not be started or undone.
    private func refuse(
        _ child: ChildSaga, of parent: SagaInstance, _ direction: StepDirection, _ reason: String, childID: String? = nil
    ) async throws {
        let news = ChildReport(step: child.step, childID: childID, result: .refused(message: reason), direction: direction)
        _ = try await apply(.child(news), to: parent.id)
    }

    /// Tells a finished child's parent how it ended.
    private func report(_ child: SagaInstance) async throws {
        guard let parent = child.parent else { return }
        let result: ChildReport.Result
        switch child.status {
        case .completed: result = .completed(output: Self.output(of: child))
        case .failed: result = .failed(message: child.lastError ?? "the saga failed")
        case .cancelled: result = .cancelled(message: child.cancellation?.reason ?? "the saga was cancelled")
        default: return
        }
        _ = try await apply(.child(ChildReport(step: parent.step, childID: child.id, result: result)), to: parent.sagaID)
    }

    /// A child's link to the parent saga and step that start it, one level deeper than the parent.
    static func link(to parent: SagaInstance, step: String) -> SagaParent {
        SagaParent(sagaID: parent.id, step: step, depth: (parent.parent?.depth ?? 0) + 1)
    }

    /// What a completed child gives its parent's step as output: its id and its steps' outputs.
    static func output(of child: SagaInstance) -> JSONValue {
        ["saga_id": .string(child.id), "steps": .object(child.stepOutputs)]
    }
}
