import BatonCore
import Foundation
import Testing

@testable import BatonStore

/// The pure part of a write: which rows one transition touches. No server needed.
@Suite("Saga write sets")
struct SagaWriteSetTests {
    let saga = try! StoreFixture.startedSaga().saga

    func timer(_ kind: SagaTimer.Kind, step: String? = "reserve", attempt: Int = 1, due: Int64 = 5) -> SagaTimer {
        SagaTimer(
            kind: kind, step: step, direction: step == nil ? nil : .action, attempt: attempt,
            due: StoreFixture.epoch + .seconds(due))
    }

    func write(_ effects: [SagaEffect], status: SagaStatus? = nil) throws -> SagaWriteSet {
        var new = saga
        if let status { new.status = status }
        let record = SagaRecord(saga: saga, revision: 1, idempotencyKey: nil, historyLength: 2, finishedAt: nil)
        return SagaWriteSet(
            old: record, new: new, transition: SagaTransition(outcome: .applied, effects: effects), idempotency: nil,
            now: StoreFixture.epoch)
    }

    @Test("the last timer effect for a slot wins, so a delete and an upsert never meet on one row")
    func timerEffectsReduce() throws {
        let timeout = timer(.stepTimeout)
        let rescheduled = try write([.cancelTimer(timeout.key), .scheduleTimer(timer(.stepTimeout, attempt: 2, due: 9))])
        #expect(rescheduled.cancelledTimers.isEmpty)
        #expect(rescheduled.scheduledTimers.map(\.attempt) == [2])

        let cancelled = try write([.scheduleTimer(timeout), .cancelTimer(timeout.key), .scheduleTimer(timer(.retryBackoff, due: 6))])
        #expect(cancelled.cancelledTimers == ["step_timeout:reserve:action"])
        #expect(cancelled.scheduledTimers.map(\.timerKey) == ["retry_backoff:reserve:action"])
        #expect(cancelled.notifications == ["timer \((StoreFixture.epoch + .seconds(6)).epochMicroseconds)"])
    }

    @Test("only a timer due within the horizon is announced: schedulers look further ahead on their own")
    func timerHorizon() throws {
        let horizon = Int64(StoreWakeup.timerHorizon.components.seconds)
        let soon = try write([.scheduleTimer(timer(.stepTimeout, due: horizon - 1))])
        #expect(soon.notifications == ["timer \((StoreFixture.epoch + .seconds(horizon - 1)).epochMicroseconds)"])
        let far = try write([.scheduleTimer(timer(.stepTimeout, due: horizon))])
        #expect(far.scheduledTimers.count == 1)
        #expect(far.notifications.isEmpty)
        // A far timer beside a sooner one: the sooner one is announced.
        let both = try write([.scheduleTimer(timer(.stepTimeout, due: 3600)), .scheduleTimer(timer(.sagaDeadline, step: nil, due: 2))])
        #expect(both.notifications == ["timer \((StoreFixture.epoch + .seconds(2)).epochMicroseconds)"])
    }

    @Test("a finished saga drops every timer, whatever the transition scheduled")
    func finishedSagaDropsTimers() throws {
        let finished = try write([.scheduleTimer(timer(.sagaDeadline, step: nil))], status: .completed)
        #expect(finished.cancelAllTimers)
        #expect(finished.scheduledTimers.isEmpty)
        #expect(finished.saga.finishedAt == StoreFixture.epoch.epochMicroseconds)
    }

    @Test("only changed steps are written; history continues the saga's sequence")
    func changedStepsAndHistory() throws {
        var new = saga
        new.steps[1].status = .running
        let entry = HistoryEntry(kind: .heartbeat, statusBefore: .processing, statusAfter: .processing, detail: "", at: StoreFixture.epoch)
        let record = SagaRecord(saga: saga, revision: 1, idempotencyKey: nil, historyLength: 2, finishedAt: nil)
        let write = SagaWriteSet(
            old: record, new: new, transition: SagaTransition(outcome: .applied, effects: [.recordHistory(entry)]), idempotency: nil,
            now: StoreFixture.epoch)
        #expect(write.steps.map(\.position) == [1])
        #expect(write.history.map(\.seq) == [3])
        #expect(write.saga.historyLength == 3)
        #expect(write.notifications.isEmpty)
    }

    @Test("paging cursors survive their text form")
    func cursorRoundTrip() throws {
        let cursor = SagaPageCursor(createdAtMicroseconds: 1_800_000_000_123_456, id: UUID())
        #expect(try SagaPageCursor(encoded: cursor.encoded) == cursor)
        #expect(!cursor.encoded.contains("="))
    }
}
