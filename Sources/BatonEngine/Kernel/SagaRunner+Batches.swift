import BatonCore
import BatonStore
import Foundation

/// An event for a saga, to be applied with others (``SagaRunner/apply(batch:)``).
struct SagaEventRequest: Sendable {
    var event: SagaEvent
    var sagaID: String
    /// The id of the message that caused it, recorded in the inbox with the change.
    var inboxMessageID: String?
    var check: EventCheck?
}

extension SagaRunner {
    /// Applies events in as few transactions as it can: the first event of each saga together in one
    /// (``BatonStore/SagaStore/updateSagas(_:now:_:)``), then each saga's second, and so on, so a
    /// saga's events apply in the order given, each on the state the one before left.
    ///
    /// One bad event never fails its neighbours: one that cannot be decided fails alone (one that can
    /// never be applied parks its saga, in the batch); when a write fails it takes the transaction
    /// with it, and the round is then applied one event at a time, so the bad one fails alone.
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
        let parked = Parkings()
        let batched: [Result<SagaUpdateResult, any Error>]
        do {
            batched = try await store.updateSagas(
                requests.map { SagaBatchItem(sagaID: $0.sagaID, inboxMessageID: $0.inboxMessageID) }, now: now
            ) { index, record, reads in
                try await decide(
                    requests[index].event, for: record, reading: reads, now: now, check: requests[index].check,
                    parked: { parked.note(index, $0) })
            }
        } catch {
            var alone: [Result<SagaUpdateResult, any Error>] = []
            for request in requests { alone.append(await applyAlone(request)) }
            return alone
        }
        for (index, result) in batched.enumerated() {
            if case .success(.updated(let record, let transition)) = result {
                committed(transition, of: record, event: requests[index].event, parked: parked[index], since: now)
            }
        }
        return batched
    }

    private func applyAlone(_ request: SagaEventRequest) async -> Result<SagaUpdateResult, any Error> {
        do {
            return .success(
                try await apply(request.event, to: request.sagaID, inboxMessageID: request.inboxMessageID, check: request.check))
        } catch {
            return .failure(error)
        }
    }

    // MARK: - Timers

    /// Fires claimed timers of different sagas in one transaction (``BatonStore/SagaStore/fireTimers(_:now:_:)``);
    /// one at a time when the transaction fails, so a bad one fails alone. A timer not fired keeps
    /// its row: its lease lapses and it is claimed again.
    func fire(batch timers: [ClaimedTimer]) async {
        metrics.batchApplied(.timers, size: timers.count)
        guard timers.count > 1 else {
            if let timer = timers.first { await fireAlone(timer) }
            return
        }
        let now = Date.now
        let parked = Parkings()
        let results: [Result<TimerFiring, any Error>]
        do {
            results = try await store.fireTimers(timers, now: now) { index, record, reads in
                try await decide(
                    .timerFired(timers[index].timer), for: record, reading: reads, now: now, parked: { parked.note(index, $0) })
            }
        } catch {
            for timer in timers { await fireAlone(timer) }
            return
        }
        for (index, (timer, result)) in zip(timers, results).enumerated() {
            switch result {
            case .success(.fired(let record, let transition)):
                metrics.timerFired(due: timer.timer.due)
                committed(transition, of: record, event: .timerFired(timer.timer), parked: parked[index], since: now)
            case .success(.superseded): break
            case .failure: await fireAlone(timer)
            }
        }
    }

    /// Fires one claimed timer in its own transaction.
    func fire(_ claimed: ClaimedTimer) async throws {
        let now = Date.now
        let event = SagaEvent.timerFired(claimed.timer)
        let parked = Parkings()
        let firing = try await store.fireTimer(claimed, now: now) { record, reads in
            try await decide(event, for: record, reading: reads, now: now, parked: { parked.note(0, $0) })
        }
        if case .fired(let record, let transition) = firing {
            metrics.timerFired(due: claimed.timer.due)
            committed(transition, of: record, event: event, parked: parked[0], since: now)
        }
    }

    private func fireAlone(_ timer: ClaimedTimer) async {
        do {
            try await fire(timer)
        } catch {
            log.logger.warning(
                "timer not fired; it will be retried", metadata: ["saga.id": "\(timer.sagaID)", "error": "\(StoreErrors.describe(error))"])
        }
    }
}
