import BatonCore
import BatonStore
import Foundation
import PostgresNIO
import Testing

@Suite("Durable timers")
struct TimerTests {
    typealias Fixture = StoreFixture

    /// Fires a claimed timer through the state machine.
    static func fire(_ claimed: ClaimedTimer, in store: SagaStore, now: Date) async throws -> TimerFiring {
        try await store.fireTimer(claimed, now: now) { record, _ in
            try Fixture.transition(record, .timerFired(claimed.timer), now: now)
        }
    }

    @Test("only due timers are claimed; the next due time is known; a fired timeout retries the step")
    func claimAndFire() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            try await store.createSaga(new, now: Fixture.epoch)
            #expect(try await store.nextTimerDue() == Fixture.epoch + .seconds(5))
            #expect(try await store.claimDueTimers(now: Fixture.epoch + .seconds(4), limit: 10, lease: .seconds(30)).isEmpty)

            let now = Fixture.epoch + .seconds(5)
            let claimed = try await store.claimDueTimers(now: now, limit: 10, lease: .seconds(30))
            #expect(claimed.map(\.timer.kind) == [.stepTimeout])
            #expect(claimed.first?.timer.attempt == 1)
            #expect(claimed.first?.leaseExpires == now + .seconds(30))
            // Claimed, the timer is next claimable when the lease ends.
            #expect(try await store.nextTimerDue() == now + .seconds(30))

            guard case .fired(let record, let transition) = try await Self.fire(claimed[0], in: store, now: now) else {
                Issue.record("a current timer fires")
                return
            }
            #expect(transition.outcome == .applied)
            #expect(record.saga.steps[0].retryAt == now + .seconds(1))
            #expect(record.saga.steps[0].outcomeUnknown)
            // The timeout is gone; the retry delay (1s, no jitter) and the deadline remain.
            let timers = try await store.timers(sagaID: new.saga.id)
            #expect(timers.map(\.kind) == [.retryBackoff, .sagaDeadline])
            #expect(timers.first?.due == now + .seconds(1))
            #expect(try await store.nextTimerDue() == now + .seconds(1))

            // The retry delay fires: attempt 2 goes out.
            let retry = try await store.claimDueTimers(now: now + .seconds(1), limit: 10, lease: .seconds(30))
            guard case .fired(let retried, _) = try await Self.fire(retry[0], in: store, now: now + .seconds(1)) else {
                Issue.record("the retry delay fires")
                return
            }
            #expect(retried.saga.steps[0].attempt == 2)
            var commands: [String] = []
            try await store.relayOutbox(limit: 10, now: now) { batch in
                commands = batch.map(\.command.messageID)
                return OutboxPublishResult(published: batch.map(\.id))
            }
            #expect(commands == ["\(new.saga.id).reserve.action.1", "\(new.saga.id).reserve.action.2"])
        }
    }

    @Test("a claimed timer that was cancelled or rescheduled since fires as a no-op")
    func supersededTimers() async throws {
        try await Fixture.withStore { store in
            // Cancelled: the reply arrived between the claim and the firing.
            let answered = try Fixture.startedSaga()
            try await store.createSaga(answered, now: Fixture.epoch)
            // Rescheduled: a heartbeat moved the timeout (same slot, new due time) after the claim.
            let heartbeating = try Fixture.startedSaga()
            try await store.createSaga(heartbeating, now: Fixture.epoch)

            let now = Fixture.epoch + .seconds(5)
            let claimed = try await store.claimDueTimers(now: now, limit: 10, lease: .seconds(30))
            #expect(claimed.count == 2)
            try await Fixture.handle(
                Fixture.reply(.succeeded(output: ["reservation": "r"]), to: answered.saga), sagaID: answered.saga.id, in: store,
                now: now)
            try await Fixture.handle(
                Fixture.reply(.inProgress, to: heartbeating.saga), sagaID: heartbeating.saga.id, in: store, now: now)
            let revisions = (
                try await store.saga(id: answered.saga.id)?.revision, try await store.saga(id: heartbeating.saga.id)?.revision
            )

            for timer in claimed {
                guard case .superseded = try await Self.fire(timer, in: store, now: now) else {
                    Issue.record("the timer of saga \(timer.sagaID) was superseded and must not fire")
                    continue
                }
            }
            #expect(try await store.saga(id: answered.saga.id)?.revision == revisions.0)
            #expect(try await store.saga(id: heartbeating.saga.id)?.revision == revisions.1)
            // The heartbeat's new timeout is still armed, unclaimed, at its new time.
            let pending = try await store.timers(sagaID: heartbeating.saga.id).filter { $0.kind == .stepTimeout }
            #expect(pending.map(\.due) == [now + .seconds(5)])
        }
    }

    @Test("timers of several sagas fire in one transaction, each fenced alone; one whose decision fails keeps its row")
    func batchFiring() async throws {
        try await Fixture.withStore { store in
            var sagas: [SagaInstance] = []
            for _ in 0..<3 {
                let new = try Fixture.startedSaga()
                try await store.createSaga(new, now: Fixture.epoch)
                sagas.append(new.saga)
            }
            let now = Fixture.epoch + .seconds(5)
            let claimed = try await store.claimDueTimers(now: now, limit: 10, lease: .seconds(30))
            #expect(claimed.count == 3)
            // The second saga's reply came after the claim: its timeout was cancelled.
            let answered = try #require(claimed.firstIndex { $0.sagaID == sagas[1].id })
            try await Fixture.handle(
                Fixture.reply(.succeeded(output: ["reservation": "r"]), to: sagas[1]), sagaID: sagas[1].id, in: store, now: now)
            let refused = try #require(claimed.firstIndex { $0.sagaID == sagas[2].id })
            struct Refused: Error {}

            let results = try await store.fireTimers(claimed, now: now) { index, record, _ in
                if index == refused { throw Refused() }
                return try Fixture.transition(record, .timerFired(claimed[index].timer), now: now)
            }
            let fired = try #require(claimed.firstIndex { $0.sagaID == sagas[0].id })
            guard case .success(.fired(let record, _)) = results[fired] else {
                Issue.record("a current timer fires: \(results[fired])")
                return
            }
            #expect(record.saga.steps[0].outcomeUnknown)
            #expect(try await store.timers(sagaID: sagas[0].id).map(\.kind) == [.retryBackoff, .sagaDeadline])
            guard case .success(.superseded) = results[answered] else {
                Issue.record("a cancelled timer must not fire: \(results[answered])")
                return
            }
            #expect(throws: Refused.self) { try results[refused].get() }
            // Its timeout is still there, claimed: it fires again when the lease lapses.
            #expect(try await store.timers(sagaID: sagas[2].id).map(\.kind) == [.stepTimeout, .sagaDeadline])
            #expect(try await store.saga(id: sagas[2].id)?.saga.steps[0].outcomeUnknown == false)
        }
    }

    @Test("a claimed timeout for attempt 1 is a no-op once attempt 2 holds the slot")
    func staleAttempt() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            try await store.createSaga(new, now: Fixture.epoch)
            let due = Fixture.epoch + .seconds(5)
            let stale = try await store.claimDueTimers(now: due, limit: 10, lease: .seconds(60))
            #expect(stale.map(\.timer.attempt) == [1])

            // Before the claimed timeout fires, attempt 1 answers "retry", the delay passes and
            // attempt 2 goes out, arming the same slot for attempt 2.
            try await Fixture.handle(
                Fixture.reply(.retry(after: nil, message: "busy"), to: new.saga), sagaID: new.saga.id, in: store, now: due)
            let backoff = try await store.claimDueTimers(now: due + .seconds(1), limit: 10, lease: .seconds(60))
            #expect(backoff.map(\.timer.kind) == [.retryBackoff])
            guard case .fired = try await Self.fire(backoff[0], in: store, now: due + .seconds(1)) else {
                Issue.record("the retry delay fires")
                return
            }
            let armed = try await store.timers(sagaID: new.saga.id).filter { $0.kind == .stepTimeout }
            #expect(armed.map(\.attempt) == [2])
            let revision = try await store.saga(id: new.saga.id)?.revision

            guard case .superseded = try await Self.fire(stale[0], in: store, now: due + .seconds(2)) else {
                Issue.record("attempt 1's timeout must not time out attempt 2")
                return
            }
            #expect(try await store.saga(id: new.saga.id)?.revision == revision)
            #expect(try await store.timers(sagaID: new.saga.id).filter { $0.kind == .stepTimeout } == armed)
        }
    }

    @Test("a timer whose scheduler died is claimed again after the lease, and only the new claim fires it")
    func lapsedLease() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            try await store.createSaga(new, now: Fixture.epoch)
            let due = Fixture.epoch + .seconds(5)
            let first = try await store.claimDueTimers(now: due, limit: 10, lease: .seconds(10))
            #expect(first.count == 1)
            // The first scheduler never fires it. Within the lease, nobody else gets it.
            #expect(try await store.claimDueTimers(now: due + .seconds(9), limit: 10, lease: .seconds(10)).isEmpty)
            let second = try await store.claimDueTimers(now: due + .seconds(10), limit: 10, lease: .seconds(10))
            #expect(second.map(\.timer) == first.map(\.timer))
            #expect(second.first?.claimToken != first.first?.claimToken)

            // The first scheduler wakes up late: its claim is void.
            guard case .superseded = try await Self.fire(first[0], in: store, now: due + .seconds(11)) else {
                Issue.record("a lapsed claim must not fire")
                return
            }
            guard case .fired = try await Self.fire(second[0], in: store, now: due + .seconds(11)) else {
                Issue.record("the current claim fires")
                return
            }
        }
    }

    @Test("concurrent schedulers claim every due timer exactly once")
    func concurrentClaimers() async throws {
        try await Fixture.withStore { store in
            let sagas = 60
            for index in 0..<sagas {
                try await store.createSaga(try Fixture.startedSaga(now: Fixture.epoch + .seconds(Int64(index))), now: Fixture.epoch)
            }
            let now = Fixture.epoch + .minutes(120)
            let claims = Collector<String>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        while true {
                            let claimed = try await store.claimDueTimers(now: now, limit: 7, lease: .minutes(5))
                            if claimed.isEmpty { break }
                            await claims.append(contentsOf: claimed.map { "\($0.sagaID)/\($0.timer.kind.rawValue)" })
                        }
                    }
                }
                try await group.waitForAll()
            }
            let claimed = await claims.values
            // Each saga has a step timeout and a deadline.
            #expect(claimed.count == sagas * 2)
            #expect(Set(claimed).count == sagas * 2)
        }
    }

    @Test("committed work wakes listeners: new commands and the soonest new timer")
    func wakeups() async throws {
        try await Fixture.withStore { store in
            let (ready, listening) = AsyncStream<Void>.makeStream()
            let received = Task {
                try await store.withWakeups { wakeups in
                    listening.yield()
                    var seen: [StoreWakeup] = []
                    for try await wakeup in wakeups {
                        if let wakeup { seen.append(wakeup) }
                        if seen.count == 2 { break }
                    }
                    return seen
                }
            }
            for await _ in ready { break }

            // A transition that fails stores nothing and wakes no one.
            let new = try Fixture.startedSaga()
            var refused = new
            refused.saga.workflowVersion = 42
            await #expect(throws: SagaStoreError.self) { try await store.createSaga(refused, now: Fixture.epoch) }

            try await store.createSaga(new, now: Fixture.epoch)
            let seen = try await received.value
            #expect(Set(seen) == [.outbox, .timer(due: Fixture.epoch + .seconds(5))])
        }
    }

    @Test("wake-up payloads read back; unknown ones are told apart")
    func wakeupPayloads() {
        let due = Date(timeIntervalSince1970: 1_800_000_000.25)
        #expect(StoreWakeup(payload: StoreWakeup.timer(due: due).payload) == .timer(due: due))
        #expect(StoreWakeup(payload: "outbox") == .outbox)
        #expect(StoreWakeup(payload: "timer soon") == nil)
        #expect(StoreWakeup(payload: "compaction") == nil)
    }
}
