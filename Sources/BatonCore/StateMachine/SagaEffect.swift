import Foundation

/// What the state machine asks the world to do. The store executes all the effects of one
/// transition in one transaction (commands go to the outbox), so state, commands and timers never
/// disagree.
public enum SagaEffect: Sendable, Hashable {
    case sendCommand(StepCommand)
    /// Create the timer, replacing any pending timer with the same ``SagaTimer/key``.
    case scheduleTimer(SagaTimer)
    case cancelTimer(SagaTimer.Key)
    case recordHistory(HistoryEntry)
    /// The saga reached `COMPLETED` or `FAILED`.
    case finished(SagaStatus)
    /// Start the child saga of a step (or find the one an earlier attempt started), after the
    /// commit; its end comes back as ``SagaEvent/child(_:)``.
    case startChild(ChildSaga)
    /// Undo the child saga of a step (``SagaEvent/parentCompensates(reason:)``), after the commit.
    case compensateChild(ChildSaga)
}

/// A step's child saga: which workflow, with which input. Its idempotency key, derived from the
/// parent and the step, makes every attempt find the same child.
public struct ChildSaga: Sendable, Hashable {
    public var step: String
    public var workflow: String
    public var input: JSONValue

    public init(step: String, workflow: String, input: JSONValue) {
        self.step = step
        self.workflow = workflow
        self.input = input
    }

    /// The idempotency key of the child that `step` of saga `parentID` starts.
    public static func idempotencyKey(parentID: String, step: String) -> String { "child:\(parentID):\(step)" }
}

/// A command for a participant: one attempt of a step's action or compensation.
public struct StepCommand: Sendable, Hashable, Codable {
    public var sagaID: String
    public var step: String
    public var participant: String
    public var action: String
    public var direction: StepDirection
    public var attempt: Int
    /// The same for every attempt of one step and direction, so a participant applies it once.
    public var idempotencyKey: String
    /// When the orchestrator stops waiting for this attempt.
    public var deadline: Date
    public var payload: JSONValue
    public var correlationID: String?
    /// The saga's W3C `traceparent`, passed through unchanged (``SagaTrace``).
    public var traceparent: String?
    /// The workflow's name, for the participant's logs (`Baton-Workflow`).
    public var workflow: String?
    /// The step's timeout for this direction (`Baton-Timeout`): after an `in_progress` reply the
    /// attempt's deadline is the reply's arrival plus this, so a participant can time its heartbeats.
    public var timeout: SagaDuration?

    public init(
        sagaID: String,
        step: String,
        participant: String,
        action: String,
        direction: StepDirection,
        attempt: Int,
        idempotencyKey: String,
        deadline: Date,
        payload: JSONValue,
        correlationID: String?,
        traceparent: String? = nil,
        workflow: String? = nil,
        timeout: SagaDuration? = nil
    ) {
        self.sagaID = sagaID
        self.step = step
        self.participant = participant
        self.action = action
        self.direction = direction
        self.attempt = attempt
        self.idempotencyKey = idempotencyKey
        self.deadline = deadline
        self.payload = payload
        self.correlationID = correlationID
        self.traceparent = traceparent
        self.workflow = workflow
        self.timeout = timeout
    }

    /// `baton.cmd.<participant>.<action>`.
    public var subject: String { "baton.cmd.\(participant).\(action)" }

    /// `<saga>.<step>.<direction>.<attempt>`: JetStream drops a second publish with the same id.
    public var messageID: String { "\(sagaID).\(step).\(direction.rawValue).\(attempt)" }

    /// The idempotency key of one leg of a saga: stable across attempts, distinct per step and direction.
    public static func idempotencyKey(sagaID: String, step: String, direction: StepDirection) -> String {
        "\(sagaID).\(step).\(direction.rawValue)"
    }
}

/// A durable timer. Every timer carries the attempt it belongs to; one that fires for an attempt
/// that is no longer current changes nothing.
public struct SagaTimer: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// An attempt got no reply in time.
        case stepTimeout = "step_timeout"
        /// A retry delay is over: send the next attempt.
        case retryBackoff = "retry_backoff"
        /// The saga's own deadline.
        case sagaDeadline = "saga_deadline"
    }

    /// Identifies the timer slot a timer occupies; scheduling into a slot replaces its timer.
    public struct Key: Sendable, Hashable, Codable {
        public var kind: Kind
        public var step: String?
        public var direction: StepDirection?

        public init(kind: Kind, step: String? = nil, direction: StepDirection? = nil) {
            self.kind = kind
            self.step = step
            self.direction = direction
        }
    }

    public var kind: Kind
    public var step: String?
    public var direction: StepDirection?
    public var attempt: Int
    public var due: Date

    public init(kind: Kind, step: String?, direction: StepDirection?, attempt: Int, due: Date) {
        self.kind = kind
        self.step = step
        self.direction = direction
        self.attempt = attempt
        self.due = due
    }

    public var key: Key { Key(kind: kind, step: step, direction: direction) }
}

/// One line of a saga's append-only history: what happened, to which step and attempt, and why.
public struct HistoryEntry: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case sagaStarted = "saga_started"
        case commandSent = "command_sent"
        case stepSucceeded = "step_succeeded"
        case stepFailed = "step_failed"
        case stepTimedOut = "step_timed_out"
        case heartbeat
        case retryScheduled = "retry_scheduled"
        case compensationStarted = "compensation_started"
        case stepCompensated = "step_compensated"
        case stepSkipped = "step_skipped"
        /// A child saga was asked to start (or, compensating, to undo what it did).
        case childRequested = "child_requested"
        /// A step under way was stopped by a cancel, the deadline, or another branch's failure.
        case stepInterrupted = "step_interrupted"
        case parallelStarted = "parallel_started"
        case parallelJoined = "parallel_joined"
        case failureHandlersStarted = "failure_handlers_started"
        case failureHandlerFailed = "failure_handler_failed"
        case signalAwaited = "signal_awaited"
        case signalReceived = "signal_received"
        case signalRefused = "signal_refused"
        case sagaSuspended = "saga_suspended"
        case sagaCompleted = "saga_completed"
        case sagaFailed = "saga_failed"
        case sagaCancelled = "saga_cancelled"
        case cancelRequested = "cancel_requested"
        case cancelRefused = "cancel_refused"
        case deadlineReached = "deadline_reached"
        case operatorAction = "operator_action"
        case operatorActionRefused = "operator_action_refused"
        /// An event that changed nothing (a stale or duplicate reply, a timer for an old attempt),
        /// kept so that "why did this reply not count?" has an answer.
        case ignored
    }

    public var kind: Kind
    public var step: String?
    public var direction: StepDirection?
    public var attempt: Int?
    public var statusBefore: SagaStatus
    public var statusAfter: SagaStatus
    public var detail: String
    public var at: Date
    /// Who asked for the change, when a person or a system did through the API (the token's name
    /// or the JWT's subject); `nil` for what the engine did by itself (replies, timers).
    public var actor: String?

    public init(
        kind: Kind,
        step: String? = nil,
        direction: StepDirection? = nil,
        attempt: Int? = nil,
        statusBefore: SagaStatus,
        statusAfter: SagaStatus,
        detail: String,
        at: Date,
        actor: String? = nil
    ) {
        self.actor = actor
        self.kind = kind
        self.step = step
        self.direction = direction
        self.attempt = attempt
        self.statusBefore = statusBefore
        self.statusAfter = statusAfter
        self.detail = detail
        self.at = at
    }
}

/// The result of handing one event to the state machine.
public struct SagaTransition: Sendable, Hashable {
    /// Whether the event changed the saga.
    public enum Outcome: Sendable, Hashable {
        case applied
        /// Changed nothing and needs no answer: a stale or duplicate reply, an old timer, an event
        /// for a finished saga.
        case ignored(IgnoredReason, String)
        /// A request (cancel, operator action) that is not allowed now, with the reason to show.
        case rejected(String)
    }

    public enum IgnoredReason: String, Sendable, Hashable {
        /// It belongs to an attempt (or a deadline) that is no longer current.
        case stale
        /// Its attempt was already answered.
        case duplicate
        /// The saga is `COMPLETED` or `FAILED`.
        case terminal
        /// It does not apply to the saga in its present state.
        case notApplicable = "not_applicable"
    }

    public var outcome: Outcome
    public var effects: [SagaEffect]

    public init(outcome: Outcome, effects: [SagaEffect]) {
        self.outcome = outcome
        self.effects = effects
    }

    /// The commands to publish.
    public var commands: [StepCommand] {
        effects.compactMap { if case .sendCommand(let command) = $0 { command } else { nil } }
    }

    /// The history entries to append.
    public var history: [HistoryEntry] {
        effects.compactMap { if case .recordHistory(let entry) = $0 { entry } else { nil } }
    }

    /// The same transition with every history entry naming `actor` as who asked for it.
    public func attributed(to actor: String?) -> SagaTransition {
        guard let actor else { return self }
        var attributed = self
        attributed.effects = effects.map { effect in
            guard case .recordHistory(var entry) = effect else { return effect }
            entry.actor = actor
            return .recordHistory(entry)
        }
        return attributed
    }
}
