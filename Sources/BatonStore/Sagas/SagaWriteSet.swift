import BatonCore
import Foundation

/// Everything one transition writes, as a single JSON document bound to one parameter.
///
/// The write statement reads its parts with `jsonb_to_record(set)` and so inserts any number of
/// steps, history entries, outbox rows and timers in one round trip. Timestamps are integer
/// microseconds since the Unix epoch; JSON values that may be JSON `null` (step outputs) travel as
/// JSON text, because a JSON `null` in a row set reads back as SQL `NULL`. The document is written
/// by hand (``encoded()``): it is built on every step, and `JSONEncoder` cost more than the rest
/// of the write.
struct SagaWriteSet {
    struct Saga {
        var status: String
        var direction: String
        var position: Int
        var currentStep: String
        var correlationID: String?
        var traceparent: String?
        var idempotencyKey: String?
        var requestHash: String?
        var deadline: Int64?
        var suspensionReason: String?
        var lastError: String?
        var cancelReason: String?
        var cancelledBy: String?
        var cancelledAt: Int64?
        /// The saga's signals as JSON, `nil` when it has none.
        var signals: String?
        var attempts: Int
        var retries: Int
        var awaitingReplySince: Int64?
        var historyLength: Int
        var createdAt: Int64
        var updatedAt: Int64
        var finishedAt: Int64?
        /// For a child saga, its parent's id, step and depth (written when it is created).
        var parentSagaID: String?
        var parentStep: String?
        var parentDepth: Int?
    }

    struct Step {
        var position: Int
        var name: String
        var status: String
        var attempt: Int
        var compensationAttempt: Int
        var attemptBudgetStart: Int
        var compensationBudgetStart: Int
        /// JSON text of the output.
        var output: String?
        /// JSON text of the error.
        var error: String?
        var replyDeadline: Int64?
        var retryAt: Int64?
        var outcomeUnknown: Bool
        var commandSentAt: Int64?
        var startedAt: Int64?
        var finishedAt: Int64?
        var completionOrder: Int?
    }

    struct History {
        var seq: Int
        var kind: String
        var step: String?
        var direction: String?
        var attempt: Int?
        var statusBefore: String
        var statusAfter: String
        var detail: String
        var at: Int64
        var actor: String?
    }

    struct Timer {
        var timerKey: String
        var kind: String
        var step: String?
        var direction: String?
        var attempt: Int
        var dueAt: Int64
    }

    var saga: Saga
    /// JSON text of the saga's input, when the saga is being created: a saga's input never changes,
    /// and rewriting it would copy a large (TOASTed) input on every transition. (Text, not a nested
    /// value: the snake_case key strategy would rewrite the keys of a nested object.)
    var input: String?
    var steps: [Step]
    var history: [History]
    /// The queued commands: the outbox keeps each command alone, and its publisher derives the
    /// message from it.
    var outbox: [StepCommand]
    /// Keys of timers to delete.
    var cancelledTimers: [String]
    /// Delete every timer of the saga (it finished).
    var cancelAllTimers: Bool
    var scheduledTimers: [Timer]
    /// When the write happens (outbox rows' `created_at`).
    var now: Int64
    /// Payloads for `pg_notify` on ``StoreWakeup/channel``, sent when the transaction commits.
    var notifications: [String]

    /// The write that takes a saga from `old` (nil when it is being created) to `new`.
    /// - Parameters:
    ///   - now: When the write happens (for `finished_at`).
    ///   - notifiesOutbox: Whether queued commands wake outbox relays through `NOTIFY` (not when
    ///     their writer publishes them itself: ``SagaStore/wakesOutboxRelays``).
    init(
        old: SagaRecord?,
        new: SagaInstance,
        transition: SagaTransition,
        idempotency: IdempotencyKey?,
        now: Date,
        notifiesOutbox: Bool = true
    ) {
        self.now = now.epochMicroseconds
        let historyLength = old?.historyLength ?? 0
        let history = transition.history
        let finishedAt: Date? = new.status.isTerminal ? (old?.finishedAt ?? now) : nil
        saga = Saga(
            status: new.status.rawValue,
            direction: new.direction.rawValue,
            position: new.cursor,
            currentStep: new.steps.indices.contains(new.cursor) ? new.steps[new.cursor].name : "",
            correlationID: new.correlationID,
            traceparent: new.traceparent,
            idempotencyKey: idempotency?.key ?? old?.idempotencyKey,
            requestHash: idempotency?.requestHash,
            deadline: new.deadline?.epochMicroseconds,
            suspensionReason: new.suspensionReason,
            lastError: new.lastError,
            cancelReason: new.cancellation?.reason,
            cancelledBy: new.cancellation?.requestedBy,
            cancelledAt: new.cancellation?.at.epochMicroseconds,
            // Rare, so encoded generically (as `RowReader.json` reads them back).
            signals: new.signals.isEmpty ? nil : (try? JSONEncoder().encode(new.signals)).map { String(decoding: $0, as: UTF8.self) },
            attempts: new.steps.reduce(0) { $0 + $1.attempt + $1.compensationAttempt },
            retries: new.steps.reduce(0) { $0 + max(0, $1.attempt - 1) + max(0, $1.compensationAttempt - 1) },
            awaitingReplySince: new.steps.filter(\.awaitingReply).compactMap(\.commandSentAt).min()?.epochMicroseconds,
            historyLength: historyLength + history.count,
            createdAt: new.createdAt.epochMicroseconds,
            updatedAt: new.updatedAt.epochMicroseconds,
            finishedAt: finishedAt?.epochMicroseconds,
            parentSagaID: new.parent?.sagaID,
            parentStep: new.parent?.step,
            parentDepth: new.parent?.depth
        )
        input = old == nil ? JSONWriter.text(of: new.input) : nil

        steps = new.steps.enumerated().compactMap { position, step in
            // Only steps that changed are written; a new saga writes all of them.
            if let old, old.saga.steps.indices.contains(position), old.saga.steps[position] == step { return nil }
            return Step(
                position: position,
                name: step.name,
                status: step.status.rawValue,
                attempt: step.attempt,
                compensationAttempt: step.compensationAttempt,
                attemptBudgetStart: step.attemptBudgetStart,
                compensationBudgetStart: step.compensationBudgetStart,
                output: step.output.map(JSONWriter.text(of:)),
                error: step.error.map { error in
                    var json = JSONWriter()
                    json.value(error)
                    return json.text
                },
                replyDeadline: step.replyDeadline?.epochMicroseconds,
                retryAt: step.retryAt?.epochMicroseconds,
                outcomeUnknown: step.outcomeUnknown,
                commandSentAt: step.commandSentAt?.epochMicroseconds,
                startedAt: step.startedAt?.epochMicroseconds,
                finishedAt: step.finishedAt?.epochMicroseconds,
                completionOrder: step.completionOrder
            )
        }
        self.history = history.enumerated().map { offset, entry in
            History(
                seq: historyLength + offset + 1,
                kind: entry.kind.rawValue,
                step: entry.step,
                direction: entry.direction?.rawValue,
                attempt: entry.attempt,
                statusBefore: entry.statusBefore.rawValue,
                statusAfter: entry.statusAfter.rawValue,
                detail: entry.detail,
                at: entry.at.epochMicroseconds,
                actor: entry.actor
            )
        }
        outbox = transition.commands

        // Timer effects apply in order, and a later one for the same slot wins: reduce them to one
        // final action per slot so the delete and the upsert never touch the same row.
        var finalTimers: [String: SagaTimer?] = [:]
        var order: [String] = []
        for effect in transition.effects {
            let key: String
            let timer: SagaTimer?
            switch effect {
            case .scheduleTimer(let scheduled): (key, timer) = (scheduled.key.storageKey, scheduled)
            case .cancelTimer(let slot): (key, timer) = (slot.storageKey, nil)
            default: continue
            }
            if finalTimers[key] == nil { order.append(key) }
            finalTimers[key] = .some(timer)
        }
        cancelAllTimers = new.status.isTerminal
        cancelledTimers = cancelAllTimers ? [] : order.filter { finalTimers[$0] == .some(nil) }
        scheduledTimers =
            cancelAllTimers
            ? []
            : order.compactMap { key in
                guard case .some(.some(let timer)) = finalTimers[key] else { return nil }
                return Timer(
                    timerKey: key,
                    kind: timer.kind.rawValue,
                    step: timer.step,
                    direction: timer.direction?.rawValue,
                    attempt: timer.attempt,
                    dueAt: timer.due.epochMicroseconds
                )
            }

        var notifications: [String] = []
        if notifiesOutbox && !outbox.isEmpty { notifications.append(StoreWakeup.outbox.payload) }
        let horizon = now.addingTimeInterval(StoreWakeup.timerHorizon / .seconds(1)).epochMicroseconds
        if let soonest = scheduledTimers.map(\.dueAt).min(), soonest < horizon {
            notifications.append(StoreWakeup.timer(due: Date(epochMicroseconds: soonest)).payload)
        }
        self.notifications = notifications
    }

    /// The document as JSON text, its keys the column names the write statement reads.
    func encoded() -> String {
        var json = JSONWriter()
        json.object { json in
            json.key("saga")
            json.object { json in
                json.member("status", saga.status)
                json.member("direction", saga.direction)
                json.member("position", saga.position)
                json.member("current_step", saga.currentStep)
                json.member("correlation_id", saga.correlationID)
                json.member("traceparent", saga.traceparent)
                json.member("idempotency_key", saga.idempotencyKey)
                json.member("request_hash", saga.requestHash)
                json.member("deadline", saga.deadline)
                json.member("suspension_reason", saga.suspensionReason)
                json.member("last_error", saga.lastError)
                json.member("cancel_reason", saga.cancelReason)
                json.member("cancelled_by", saga.cancelledBy)
                json.member("cancelled_at", saga.cancelledAt)
                json.member("signals", saga.signals)
                json.member("attempts", saga.attempts)
                json.member("retries", saga.retries)
                json.member("awaiting_reply_since", saga.awaitingReplySince)
                json.member("history_length", saga.historyLength)
                json.member("created_at", saga.createdAt)
                json.member("updated_at", saga.updatedAt)
                json.member("finished_at", saga.finishedAt)
                json.member("parent_saga_id", saga.parentSagaID)
                json.member("parent_step", saga.parentStep)
                json.member("parent_depth", saga.parentDepth.map(Int64.init))
            }
            json.member("input", input)
            json.key("steps")
            json.array(steps) { json, step in
                json.object { json in
                    json.member("position", step.position)
                    json.member("name", step.name)
                    json.member("status", step.status)
                    json.member("attempt", step.attempt)
                    json.member("compensation_attempt", step.compensationAttempt)
                    json.member("attempt_budget_start", step.attemptBudgetStart)
                    json.member("compensation_budget_start", step.compensationBudgetStart)
                    json.member("output", step.output)
                    json.member("error", step.error)
                    json.member("reply_deadline", step.replyDeadline)
                    json.member("retry_at", step.retryAt)
                    json.member("outcome_unknown", step.outcomeUnknown)
                    json.member("command_sent_at", step.commandSentAt)
                    json.member("started_at", step.startedAt)
                    json.member("finished_at", step.finishedAt)
                    json.member("completion_order", step.completionOrder.map(Int64.init))
                }
            }
            json.key("history")
            json.array(history) { json, entry in
                json.object { json in
                    json.member("seq", entry.seq)
                    json.member("kind", entry.kind)
                    json.member("step", entry.step)
                    json.member("direction", entry.direction)
                    json.key("attempt")
                    if let attempt = entry.attempt { json.integer(Int64(attempt)) } else { json.null() }
                    json.member("status_before", entry.statusBefore)
                    json.member("status_after", entry.statusAfter)
                    json.member("detail", entry.detail)
                    json.member("at", entry.at)
                    json.member("actor", entry.actor)
                }
            }
            json.key("outbox")
            // The commands go in as JSON values, not as strings: nothing to escape or to parse twice.
            json.array(outbox) { json, command in json.value(command) }
            json.key("cancelled_timers")
            json.array(cancelledTimers) { $0.string($1) }
            json.member("cancel_all_timers", cancelAllTimers)
            json.key("scheduled_timers")
            json.array(scheduledTimers) { json, timer in
                json.object { json in
                    json.member("timer_key", timer.timerKey)
                    json.member("kind", timer.kind)
                    json.member("step", timer.step)
                    json.member("direction", timer.direction)
                    json.member("attempt", timer.attempt)
                    json.member("due_at", timer.dueAt)
                }
            }
            json.member("now", now)
            json.key("notifications")
            json.array(notifications) { $0.string($1) }
        }
        return json.text
    }
}

extension SagaTimer.Key {
    /// The timer's slot as stored: `saga_deadline`, or `step_timeout:debit:action`.
    var storageKey: String {
        [kind.rawValue, step, direction?.rawValue].compactMap { $0 }.joined(separator: ":")
    }
}
