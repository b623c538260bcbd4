import BatonCore
import BatonStore
import Foundation

/// An event for a saga, to be applied with others (``DefinitionCatalog/apply(batch:)``).
struct SagaEventRequest: Sendable {
    var event: SagaEvent
    var sagaID: String
    /// The id of the message that caused it, recorded in the inbox with the change.
    var inboxMessageID: String?
    var check: EventCheck?
}

extension DefinitionCatalog {
    /// Applies events in as few transactions as it can: the first event of each saga together in one
    /// (``BatonStore/SagaStore/updateSagas(_:now:_:)``), then each saga's second, and so on, so a
    /// saga's events apply in the order given, each on the state the one before left.
    ///
    /// One bad event never fails its neighbours: one that cannot be decided is handled alone (a
    /// definition not cached yet is loaded and the event applied; one that can never be applied
    /// parks its saga); when a write fails it takes the transaction with it, and the round is then
    /// applied one event at a time, so the bad one fails alone.
    /// - Returns: One result per request, in order.
    func apply(batch requests: [SagaEventRequest]) async -> [Result<SagaUpdateResult, any Error>] {
        var results = [Result<SagaUpdateResult, any Error>?](repeating: nil, count: requests.count)
        for round in sagaRounds(Array(requests.indices), sagaID: { requests[$0].sagaID }) {
            for (index, result) in zip(round, await applyRound(round.map { requests[$0] })) { results[index] = result }
        }
        // Every index was in exactly one round.
        return results.compactMap { $0 }
    }

    /// Applies events of distinct sagas in one transaction, or one at a time when that fails.
    private func applyRound(_ requests: [SagaEventRequest]) async -> [Result<SagaUpdateResult, any Error>] {
        metrics.batchApplied(.replies, size: requests.count)
        if requests.count == 1 { return [await applyAlone(requests[0])] }
        let now = Date.now
        let batched: [Result<SagaUpdateResult, any Error>]
        do {
            batched = try await store.updateSagas(
                requests.map { SagaBatchItem(sagaID: $0.sagaID, inboxMessageID: $0.inboxMessageID) }, now: now
            ) { index, record in
                try transition(record, requests[index].event, now: now, check: requests[index].check)
            }
        } catch {
            var alone: [Result<SagaUpdateResult, any Error>] = []
            for request in requests { alone.append(await applyAlone(request)) }
            return alone
        }
        var results: [Result<SagaUpdateResult, any Error>] = []
        for (request, result) in zip(requests, batched) {
            switch result {
            case .success(.updated(let updated, let transition)):
                record(transition, of: updated.saga)
                results.append(result)
            case .failure(is DefinitionNotCached), .failure(is UnappliableEvent):
                results.append(await applyAlone(request))
            default:
                results.append(result)
            }
        }
        return results
    }

    private func applyAlone(_ request: SagaEventRequest) async -> Result<SagaUpdateResult, any Error> {
        do {
            return .success(
                try await apply(request.event, to: request.sagaID, inboxMessageID: request.inboxMessageID, check: request.check))
        } catch {
            return .failure(error)
        }
    }
}
