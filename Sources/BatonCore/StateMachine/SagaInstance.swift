import Foundation

/// A cancel the saga accepted: why, who asked, and when.
public struct SagaCancellation: Sendable, Hashable, Codable {
    public var reason: String
    /// The API caller who asked, when known.
    public var requestedBy: String?
    public var at: Date

    public init(reason: String, requestedBy: String?, at: Date) {
        self.reason = reason
        self.requestedBy = requestedBy
        self.at = at
    }
}

/// The saga and step that started a child saga.
public struct SagaParent: Sendable, Hashable, Codable {
    public var sagaID: String
    public var step: String
    /// 1 for a child of a saga started from outside, 2 for its child, and so on.
    public var depth: Int

    public init(sagaID: String, step: String, depth: Int) {
        self.sagaID = sagaID
        self.step = step
        self.depth = depth
    }

    /// How deeply children may nest: a workflow that starts itself stops here.
    public static let maximumDepth = 8
}

/// The durable state of one saga: everything the state machine needs to decide the next move.
public struct SagaInstance: Sendable, Hashable, Codable {
    public var id: String
    public var workflow: String
    public var workflowVersion: Int
    /// The ``WorkflowDefinition/contentHash`` of the definition this saga runs.
    public var workflowHash: String
    public var correlationID: String?
    /// The W3C `traceparent` every command of the saga carries (``SagaTrace``).
    public var traceparent: String?
    public var input: JSONValue
    public var status: SagaStatus
    /// Whether the saga is moving forward (actions) or backward (compensations); kept while
    /// `SUSPENDED` so an operator's retry resumes the right way.
    public var direction: StepDirection
    /// The step being run or compensated.
    public var cursor: Int
    public var steps: [StepState]
    /// When the saga's own deadline fires, if its workflow has one.
    public var deadline: Date?
    /// Why the saga is suspended, while it is.
    public var suspensionReason: String?
    public var lastError: String?
    /// Set when a cancel was accepted: the saga then ends `CANCELLED` once compensated.
    public var cancellation: SagaCancellation?
    /// The signals it received, in order, consumed or waiting for their step.
    public var signals: [SagaSignal] = []
    /// For a child saga, the saga and step that started it.
    public var parent: SagaParent?
    public var createdAt: Date
    public var updatedAt: Date

    /// A new saga in `PENDING`, with every step `PENDING`.
    /// - Parameter workflowHash: The definition's ``WorkflowDefinition/contentHash``, when the caller
    ///   has it: computing it encodes and hashes the whole definition.
    public init(
        id: String, definition: WorkflowDefinition, workflowHash: String? = nil, input: JSONValue, correlationID: String? = nil,
        traceparent: String? = nil, parent: SagaParent? = nil, now: Date
    ) {
        self.parent = parent
        self.id = id
        self.workflow = definition.name
        self.workflowVersion = definition.version
        self.workflowHash = workflowHash ?? definition.contentHash
        self.correlationID = correlationID
        self.traceparent = traceparent
        self.input = input
        self.status = .pending
        self.direction = .action
        self.cursor = 0
        self.steps = definition.allSteps.map { StepState(name: $0.name) }
        self.createdAt = now
        self.updatedAt = now
    }

    /// A saga as it was stored (the store reads sagas back through this).
    public init(
        id: String,
        workflow: String,
        workflowVersion: Int,
        workflowHash: String,
        correlationID: String?,
        traceparent: String? = nil,
        input: JSONValue,
        status: SagaStatus,
        direction: StepDirection,
        cursor: Int,
        steps: [StepState],
        deadline: Date?,
        suspensionReason: String?,
        lastError: String?,
        cancellation: SagaCancellation? = nil,
        signals: [SagaSignal] = [],
        parent: SagaParent? = nil,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.parent = parent
        self.id = id
        self.workflow = workflow
        self.workflowVersion = workflowVersion
        self.workflowHash = workflowHash
        self.correlationID = correlationID
        self.traceparent = traceparent
        self.input = input
        self.status = status
        self.direction = direction
        self.cursor = cursor
        self.steps = steps
        self.deadline = deadline
        self.suspensionReason = suspensionReason
        self.lastError = lastError
        self.cancellation = cancellation
        self.signals = signals
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The outputs of the steps that produced one, by step name (for templates).
    public var stepOutputs: [String: JSONValue] {
        var outputs: [String: JSONValue] = [:]
        for step in steps { if let output = step.output { outputs[step.name] = output } }
        return outputs
    }
}

/// The state of one step of a saga.
public struct StepState: Sendable, Hashable, Codable {
    public var name: String
    public var status: StepStatus
    /// Action attempts started so far (0 before the first).
    public var attempt: Int
    /// Compensation attempts started so far.
    public var compensationAttempt: Int
    /// Attempts made before the current retry budget began (an operator's retry starts a new one).
    public var attemptBudgetStart: Int
    public var compensationBudgetStart: Int
    public var output: JSONValue?
    public var error: StepError?
    /// While a command is in flight: when its attempt times out (a heartbeat moves it).
    public var replyDeadline: Date?
    /// While waiting out a retry delay: when the next attempt is sent.
    public var retryAt: Date?
    /// Whether the action may have taken effect without Baton knowing: set when an action attempt
    /// times out (or is interrupted in flight), cleared only by a definitive reply (`succeeded` or
    /// `failed`). A `retry` reply does not clear it: an earlier attempt may still be applied late.
    public var outcomeUnknown: Bool
    /// When the latest command of this step (either direction) was sent: "awaiting a reply since".
    public var commandSentAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// For a step of a parallel group that succeeded or timed out: its place (1, 2, …) in the
    /// order the saga's group steps completed in, which their compensation runs backwards. `nil`
    /// outside groups, where completion follows the step order.
    public var completionOrder: Int?

    public init(name: String) {
        self.name = name
        self.status = .pending
        self.attempt = 0
        self.compensationAttempt = 0
        self.attemptBudgetStart = 0
        self.compensationBudgetStart = 0
        self.outcomeUnknown = false
    }

    /// The attempt number of the given direction.
    public func attempt(_ direction: StepDirection) -> Int {
        direction == .action ? attempt : compensationAttempt
    }

    /// Whether a command of this step is in flight and awaits a reply.
    public var awaitingReply: Bool { replyDeadline != nil }
}

/// Why a step attempt did not succeed, as recorded on the step.
public struct StepError: Sendable, Hashable, Codable {
    /// A participant's machine-readable code (`insufficient_funds`), or Baton's own (`timeout`).
    public var code: String
    public var message: String
    public var direction: StepDirection
    public var attempt: Int

    public init(code: String, message: String, direction: StepDirection, attempt: Int) {
        self.code = code
        self.message = message
        self.direction = direction
        self.attempt = attempt
    }
}
