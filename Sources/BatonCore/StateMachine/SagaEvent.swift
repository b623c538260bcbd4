/// Something that happened to a saga; the state machine turns each into a transition.
public enum SagaEvent: Sendable, Hashable {
    /// The saga was created and should run its first step.
    case start
    /// A participant answered a command.
    case reply(StepReply)
    /// A durable timer came due.
    case timerFired(SagaTimer)
    /// Someone asked (over the API) to stop the saga and undo what it did; `requestedBy` is the
    /// caller, when known.
    case cancel(reason: String, requestedBy: String? = nil)
    /// An operator acted on a `SUSPENDED` saga.
    case operatorAction(OperatorAction)
    /// A signal from outside, for the signal step of its name (``SagaSignal``; `receivedAt` is set
    /// by the state machine).
    case signal(SagaSignal)
    /// News of a child saga, for the step that started it: how it ended, or that it could not be
    /// started or undone.
    case child(ChildReport)
    /// Sent to a child saga when its parent compensates the step that started it: the child undoes
    /// what it did (a `COMPLETED` child too, unless it passed its pivot) and ends `CANCELLED`.
    case parentCompensates(reason: String)
}

/// What the engine tells a parent saga about the child saga one of its steps started.
public struct ChildReport: Sendable, Hashable {
    public enum Result: Sendable, Hashable {
        /// The child ended `COMPLETED`; `output` is what the step's output becomes.
        case completed(output: JSONValue)
        /// The child ended `FAILED`.
        case failed(message: String)
        /// The child ended `CANCELLED`.
        case cancelled(message: String)
        /// The child could not be started (no such workflow, input its schema refuses, nested too
        /// deep), or could not be undone (past its pivot, suspended).
        case refused(message: String)
    }

    /// The parent's step that started the child.
    public var step: String
    /// The child's id, when there is a child.
    public var childID: String?
    public var result: Result
    /// For a refusal, whether it answers starting the child (`action`) or undoing it
    /// (`compensation`); `nil` for an end, which answers whichever the step is waiting for.
    public var direction: StepDirection?

    public init(step: String, childID: String?, result: Result, direction: StepDirection? = nil) {
        self.step = step
        self.childID = childID
        self.result = result
        self.direction = direction
    }
}

/// A participant's answer to one command attempt.
public struct StepReply: Sendable, Hashable {
    public var step: String
    public var direction: StepDirection
    /// The attempt the command carried; a reply to any other attempt changes nothing.
    public var attempt: Int
    public var status: ReplyStatus

    public init(step: String, direction: StepDirection, attempt: Int, status: ReplyStatus) {
        self.step = step
        self.direction = direction
        self.attempt = attempt
        self.status = status
    }
}

/// The four answers a participant may give.
public enum ReplyStatus: Sendable, Hashable {
    /// Done; `output` becomes available to later steps' templates.
    case succeeded(output: JSONValue)
    /// A business failure with no effect: before the pivot the saga compensates.
    case failed(code: String, message: String)
    /// A transient failure with no effect: try again by the step's policy, or after `after`.
    case retry(after: SagaDuration?, message: String)
    /// Still working: a heartbeat that moves the attempt's timeout forward by the step's timeout.
    case inProgress
}

/// What an operator may do with a `SUSPENDED` saga. Every action carries a reason, which the
/// history records.
public enum OperatorAction: Sendable, Hashable {
    /// Send the stuck step (or compensation) again, with a fresh retry budget.
    case retry(reason: String)
    /// Pass over the stuck step (or its compensation) and go on in the same direction.
    case skip(step: String, reason: String)
    /// Declare the saga settled by hand: `COMPLETED` when it was moving forward, `FAILED` when it was
    /// compensating (`CANCELLED` when a cancel started the compensation); steps left undone are
    /// marked `SKIPPED`.
    case resolve(reason: String)
    /// For a saga suspended because its pivot's outcome is unknown: the operator has checked that the
    /// pivot did not take effect, so the saga compensates the steps before it.
    case compensate(reason: String)

    public var reason: String {
        switch self {
        case .retry(let reason), .skip(_, let reason), .resolve(let reason), .compensate(let reason): reason
        }
    }

    public var name: String {
        switch self {
        case .retry: "retry"
        case .skip: "skip"
        case .resolve: "resolve"
        case .compensate: "compensate"
        }
    }
}
