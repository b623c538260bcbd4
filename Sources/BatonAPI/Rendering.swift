import BatonCore
import BatonHTTP
import BatonStore
import Foundation
import Hummingbird

/// How the API writes Baton's values as JSON. Times are RFC 3339 in UTC with milliseconds.
enum Render {
    static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func time(_ date: Date?) -> JSONValue { date.map { .string($0.formatted(timeStyle)) } ?? .null }

    static func string(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        JSONBodies.response(value, status: status, headers: extra)
    }

    static func links(_ id: String) -> JSONValue {
        ["self": .string("/v1/sagas/\(id)"), "history": .string("/v1/sagas/\(id)/history"), "cancel": .string("/v1/sagas/\(id)/cancel")]
    }

    /// A saga; with its `definition`, each step's role and shape; with `children`, the child sagas
    /// its steps started (only `GET /v1/sagas/{id}` looks them up).
    static func saga(_ record: SagaRecord, definition: WorkflowDefinition?, children: [ChildSagaSummary]? = nil) -> JSONValue {
        let saga = record.saga
        // The definition the saga pinned has one entry per step state; anything else is not it.
        let definition = definition.flatMap { $0.allSteps.count == saga.steps.count ? $0 : nil }
        let steps: [JSONValue] = saga.steps.enumerated().map { index, step in
            var rendered: [String: JSONValue] = [
                "name": .string(step.name), "status": .string(step.status.rawValue), "attempt": .integer(Int64(step.attempt)),
                "compensation_attempt": .integer(Int64(step.compensationAttempt)), "output": step.output ?? .null,
                "error": step.error.map { error in
                    [
                        "code": .string(error.code), "message": .string(error.message), "direction": .string(error.direction.rawValue),
                        "attempt": .integer(Int64(error.attempt)),
                    ]
                } ?? .null,
                "outcome_unknown": .bool(step.outcomeUnknown), "started_at": time(step.startedAt), "finished_at": time(step.finishedAt),
                "command_sent_at": time(step.commandSentAt), "reply_deadline": time(step.replyDeadline), "retry_at": time(step.retryAt),
                "completion_order": step.completionOrder.map { .integer(Int64($0)) } ?? .null,
            ]
            if let definition { rendered.merge(shape(of: definition, at: index)) { _, shape in shape } }
            return .object(rendered)
        }
        var rendered: [String: JSONValue] = [
            "id": .string(saga.id), "workflow": .string(saga.workflow), "version": .integer(Int64(saga.workflowVersion)),
            "workflow_hash": .string(saga.workflowHash), "status": .string(saga.status.rawValue),
            "direction": .string(saga.direction.rawValue),
            "current_step": saga.steps.indices.contains(saga.cursor) ? .string(saga.steps[saga.cursor].name) : .null,
            "correlation_id": string(saga.correlationID), "traceparent": string(saga.traceparent), "input": saga.input,
            "deadline": time(saga.deadline),
            "suspension_reason": string(saga.suspensionReason), "last_error": string(saga.lastError),
            "cancellation": cancellation(saga.cancellation), "signals": .array(saga.signals.map(signal)),
            "created_at": time(saga.createdAt), "updated_at": time(saga.updatedAt), "finished_at": time(record.finishedAt),
            "revision": .integer(record.revision), "steps": .array(steps), "links": links(saga.id),
            "parent": parent(saga.parent),
        ]
        if let children { rendered["children"] = .array(children.map(child)) }
        return .object(rendered)
    }

    /// What the workflow says step `index` is: a step or a failure handler; a command (to which
    /// participant and action), a wait for a signal, or a child saga (of which workflow); the pivot
    /// or not; and its parallel group and branch.
    static func shape(of definition: WorkflowDefinition, at index: Int) -> [String: JSONValue] {
        let step = definition.step(at: index)
        var shape: [String: JSONValue] = [
            "role": definition.isFailureHandler(index) ? "failure_handler" : "step",
            "kind": step.signal != nil ? "signal" : step.workflow != nil ? "child" : "command",
            "pivot": .bool(step.pivot),
            "parallel": step.branch.map { ["group": .string($0.group), "branch": .string($0.name)] } ?? .null,
        ]
        if step.sendsCommand {
            shape["participant"] = .string(step.participant)
            shape["action"] = .string(step.action)
        }
        if let signal = step.signal { shape["signal"] = .string(signal) }
        if let workflow = step.workflow { shape["workflow"] = .string(workflow) }
        return shape
    }

    /// The saga and step that started a child saga; `null` for a saga started from outside.
    static func parent(_ parent: SagaParent?) -> JSONValue {
        guard let parent else { return .null }
        return [
            "saga_id": .string(parent.sagaID), "step": .string(parent.step), "depth": .integer(Int64(parent.depth)),
            "link": .string("/v1/sagas/\(parent.sagaID)"),
        ]
    }

    /// A child saga one of a saga's steps started.
    static func child(_ child: ChildSagaSummary) -> JSONValue {
        [
            "saga_id": .string(child.id), "step": .string(child.step), "workflow": .string(child.workflow),
            "version": .integer(Int64(child.workflowVersion)), "status": .string(child.status.rawValue),
            "link": .string("/v1/sagas/\(child.id)"),
        ]
    }

    static func summary(_ saga: SagaSummary) -> JSONValue {
        [
            "id": .string(saga.id), "workflow": .string(saga.workflow), "version": .integer(Int64(saga.workflowVersion)),
            "status": .string(saga.status.rawValue), "current_step": .string(saga.currentStep),
            "correlation_id": string(saga.correlationID), "attempts": .integer(Int64(saga.attempts)),
            "retries": .integer(Int64(saga.retries)), "last_error": string(saga.lastError),
            "suspension_reason": string(saga.suspensionReason), "cancellation": cancellation(saga.cancellation),
            "awaiting_reply_since": time(saga.awaitingReplySince),
            "created_at": time(saga.createdAt), "updated_at": time(saga.updatedAt), "finished_at": time(saga.finishedAt),
            "links": links(saga.id),
        ]
    }

    /// A saga's accepted cancel: why, who asked (the API caller), when; `null` when never cancelled.
    static func cancellation(_ cancellation: SagaCancellation?) -> JSONValue {
        guard let cancellation else { return .null }
        return ["reason": .string(cancellation.reason), "requested_by": string(cancellation.requestedBy), "at": time(cancellation.at)]
    }

    /// A signal the saga received: what it said, who sent it, and the step that consumed it (`null`
    /// while it is kept for a step that does not wait yet).
    static func signal(_ signal: SagaSignal) -> JSONValue {
        var rendered: [String: JSONValue] = [
            "name": .string(signal.name), "key": .string(signal.key), "sent_by": string(signal.sentBy),
            "received_at": time(signal.receivedAt), "consumed_by": string(signal.consumedBy),
        ]
        switch signal.outcome {
        case .succeeded(let payload):
            rendered["payload"] = payload
        case .failed(let code, let message):
            rendered["failed"] = ["code": .string(code), "message": .string(message)]
        }
        return .object(rendered)
    }

    static func history(_ entry: StoredHistoryEntry) -> JSONValue {
        [
            "seq": .integer(Int64(entry.seq)), "kind": .string(entry.entry.kind.rawValue), "step": string(entry.entry.step),
            "direction": string(entry.entry.direction?.rawValue), "attempt": entry.entry.attempt.map { .integer(Int64($0)) } ?? .null,
            "status_before": .string(entry.entry.statusBefore.rawValue), "status_after": .string(entry.entry.statusAfter.rawValue),
            "detail": .string(entry.entry.detail), "at": time(entry.entry.at), "actor": string(entry.entry.actor),
        ]
    }

    static func definition(_ stored: StoredDefinition) -> JSONValue {
        let document = (try? JSONDecoder().decode(JSONValue.self, from: stored.definition.canonicalJSON)) ?? .null
        return [
            "name": .string(stored.definition.name), "version": .integer(Int64(stored.definition.version)),
            "description": .string(stored.definition.description), "hash": .string(stored.contentHash),
            "registered_at": time(stored.registeredAt), "registered_by": string(stored.registeredBy), "definition": document,
        ]
    }
}
