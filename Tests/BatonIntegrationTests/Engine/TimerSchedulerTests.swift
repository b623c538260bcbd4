import BatonCore
import BatonStore
import Foundation
import Logging
import Synchronization
import Testing

@testable import BatonEngine

/// The scheduler sleeps until its next timer and is woken by the store's announcements. Real
/// PostgreSQL, `LISTEN/NOTIFY` included.
@Suite("Timer scheduler")
struct TimerSchedulerTests {
    static let logger = Logger(label: "baton.test.scheduler")

    @Test("a timer committed while the scheduler looks for its next one wakes it; it does not wait for the idle poll")
    func timerAnnouncedBeforeTheSleep() async throws {
        try await StoreFixture.withStore { store in
            var scheduler = TimerScheduler(runner: SagaRunner(store: store), logger: Self.logger)
            // Far longer than the test waits: the timer fires through its announcement or not at all.
            scheduler.idlePoll = .seconds(600)
            // Its step timeout (5 s after it started) is due about a second from now.
            let saga = try StoreFixture.startedSaga(now: .now.addingTimeInterval(-4))
            let looks = Mutex(0)
            scheduler.afterLookingForNextTimer = {
                // The first look may precede the listener; the one after its "listening" ring does not.
                guard
                    looks.withLock({ count in
                        count += 1
                        return count == 2
                    })
                else { return }
                do {
                    try await store.createSaga(saga, now: .now)
                } catch {
                    Issue.record("the saga was not created: \(error)")
                }
                // Long enough for its NOTIFY to reach the listener before the scheduler sleeps.
                try? await Task.sleep(for: .milliseconds(500))
            }
            let running = Task { try await scheduler.run() }
            defer { running.cancel() }

            var timedOut = false
            for _ in 0..<100 where !timedOut {
                try await Task.sleep(for: .milliseconds(100))
                timedOut = try await store.history(sagaID: saga.saga.id).contains { $0.entry.kind == .stepTimedOut }
            }
            #expect(timedOut, "the step timeout did not fire within 10 s")
            #expect(looks.withLock { $0 } >= 2)
        }
    }
}
