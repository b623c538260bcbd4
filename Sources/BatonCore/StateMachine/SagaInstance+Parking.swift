import Foundation

extension SagaInstance {
    /// Parks the saga for an operator because an event cannot be applied to it, for a reason that
    /// retrying will not remove (its definition no longer matches its state, say). Without this the
    /// event would fail again on every redelivery, and a timer would fire again every lease, for
    /// ever; with it the saga is SUSPENDED with the reason in its history, none of its timers fire
    /// again, and every other saga keeps flowing.
    ///
    /// A finished saga stays finished: only its timers are dropped and the event is recorded as
    /// ignored.
    /// - Parameters:
    ///   - reason: Why the event cannot be applied.
    ///   - event: The event, as its ``SagaEvent/summary``.
    ///   - now: The current time.
    /// - Returns: The transition to store: the history entry and a cancel for every timer slot.
    public mutating func park(because reason: String, event: String, now: Date) -> SagaTransition {
        let before = status
        var effects: [SagaEffect] = [.cancelTimer(SagaTimer.Key(kind: .sagaDeadline))]
        for step in steps {
            for direction in [StepDirection.action, .compensation] {
                effects.append(.cancelTimer(SagaTimer.Key(kind: .stepTimeout, step: step.name, direction: direction)))
                effects.append(.cancelTimer(SagaTimer.Key(kind: .retryBackoff, step: step.name, direction: direction)))
            }
        }
        let stepName = steps.indices.contains(cursor) ? steps[cursor].name : nil
        guard !status.isTerminal else {
            effects.append(
                .recordHistory(
                    HistoryEntry(
                        kind: .ignored, step: stepName, direction: nil, attempt: nil, statusBefore: before, statusAfter: status,
                        detail: "\(event) ignored: it cannot be applied (\(reason)), and the saga is already \(status.rawValue)", at: now)))
            return SagaTransition(outcome: .ignored(.terminal, reason), effects: effects)
        }
        status = .suspended
        suspensionReason = "\(event) cannot be applied: \(reason)"
        lastError = suspensionReason
        updatedAt = now
        for index in steps.indices {
            steps[index].replyDeadline = nil
            steps[index].retryAt = nil
        }
        effects.append(
            .recordHistory(
                HistoryEntry(
                    kind: .sagaSuspended, step: stepName, direction: nil, attempt: nil, statusBefore: before, statusAfter: .suspended,
                    detail: "parked: \(event) cannot be applied (\(reason)); an operator must retry, skip or resolve", at: now)))
        return SagaTransition(outcome: .applied, effects: effects)
    }
}
