/// Where a saga is in its life.
///
/// `PENDING → PROCESSING → COMPLETED`, or `PROCESSING → COMPENSATING → FAILED`, or, when someone
/// cancelled it, `→ COMPENSATING → CANCELLED`; a compensation that cannot finish (or a step after
/// the pivot that cannot) parks the saga in `SUSPENDED` until an operator acts.
public enum SagaStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending = "PENDING"
    case processing = "PROCESSING"
    case compensating = "COMPENSATING"
    case suspended = "SUSPENDED"
    case completed = "COMPLETED"
    case failed = "FAILED"
    /// Cancelled on request and compensated (``SagaInstance/cancellation`` says why and who asked).
    case cancelled = "CANCELLED"

    /// `COMPLETED`, `FAILED` and `CANCELLED` absorb every later event.
    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
}

/// Where one step is.
public enum StepStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending = "PENDING"
    /// A command is in flight, or the step waits out a retry delay.
    case running = "RUNNING"
    case succeeded = "SUCCEEDED"
    /// It failed without effect (a `failed` reply, or retries that were all refused).
    case failed = "FAILED"
    /// Its outcome is unknown (no reply in time): it may have taken effect, so it is compensated.
    case timedOut = "TIMED_OUT"
    case compensating = "COMPENSATING"
    case compensated = "COMPENSATED"
    /// Passed over by an operator, with a reason in the history.
    case skipped = "SKIPPED"
}

/// Whether a command does a step's action or undoes it.
public enum StepDirection: String, Sendable, Hashable, Codable, CaseIterable {
    case action
    case compensation
}
