import BatonCore
import BatonEngine
import BatonStore
import Foundation
import Hummingbird

/// `GET /v1/participants`, a saga's warnings about participants nobody works for, and the metrics
/// an alert reads.
extension BatonAPI {
    func participantList() async throws -> Response {
        let snapshot = await participants.snapshot()
        return Render.json([
            "participants": .array(
                snapshot.participants.map { status in
                    let consumer = status.consumer
                    return [
                        "name": .string(status.name), "actions": .array(status.actions.map(JSONValue.string)),
                        "subject": .string("baton.cmd.\(status.name).>"), "consumer": .bool(consumer != nil),
                        "pending": consumer.map { .integer(Int64(clamping: $0.pending)) } ?? .null,
                        "unacknowledged": consumer.map { .integer(Int64($0.unacknowledged)) } ?? .null,
                        "waiting_pulls": consumer.map { .integer(Int64($0.waitingPulls)) } ?? .null,
                        "last_delivery": Render.time(consumer?.lastDelivery),
                        "last_worker_seen": Render.time(status.lastWorkerSeen),
                        "workers": snapshot.hasWorker(status).map(JSONValue.bool) ?? .null,
                    ]
                }),
            "checked_at": Render.time(snapshot.at), "problem": Render.string(snapshot.problem),
        ])
    }

    /// What keeps a saga from moving that it cannot tell by itself: a step whose participant has
    /// no worker to take its command.
    func warnings(_ record: SagaRecord, definition: WorkflowDefinition?) async -> [String] {
        guard !record.saga.status.isTerminal, let definition, definition.allSteps.count == record.saga.steps.count else { return [] }
        let waiting = record.saga.steps.indices.filter { index in
            record.saga.steps[index].status == .running || record.saga.steps[index].status == .compensating
        }.filter { definition.step(at: $0).sendsCommand }
        guard !waiting.isEmpty else { return [] }
        let snapshot = await participants.snapshot()
        return waiting.compactMap { index in
            let participant = definition.step(at: index).participant
            guard let status = snapshot.status(of: participant), snapshot.hasWorker(status) == false else { return nil }
            let consumer = status.consumer == nil ? "it has no consumer" : "nothing has pulled from its consumer"
            return
                "step '\(record.saga.steps[index].name)' waits for participant '\(participant)', which has no worker: \(consumer) "
                + "in the last \(Int(snapshot.grace.seconds)) s; start a worker for baton.cmd.\(participant).> (docs/participants.md)"
        }
    }

    /// `baton_participant_workers` (1 while a worker is seen, else 0) and
    /// `baton_participant_commands_pending`, per participant, read at each scrape.
    func sampleParticipants() async {
        let snapshot = await participants.snapshot()
        guard snapshot.problem == nil else { return }
        for status in snapshot.participants {
            engineMetrics.participant(status.name, working: snapshot.hasWorker(status), pending: status.consumer?.pending ?? 0)
        }
    }
}
