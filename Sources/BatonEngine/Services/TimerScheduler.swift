import BatonCore
import BatonStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The durable scheduler: fires due timers (step timeouts, retry delays, saga deadlines) through
/// the state machine, and sleeps until the next one is due, or a `NOTIFY` says a sooner one was
/// scheduled, or ``idlePoll`` has passed. Replicas claim timers with `SKIP LOCKED` under a lease;
/// a claim is fenced by its token, so a timer fires once however many replicas run.
public struct TimerScheduler: Service {
    let runner: SagaRunner
    let logger: Logger
    public var batchSize = 64
    /// Transactions firing timers at once: a claimed batch is split into this many, each firing
    /// timers of different sagas.
    public var fireConcurrency = 8
    /// How long a claim lasts before another replica may take the timer.
    public var lease: SagaDuration = .seconds(30)
    /// The longest sleep without a wake-up. Timers due further ahead than this are not announced
    /// (``StoreWakeup/timerHorizon``), so it must not be longer.
    public var idlePoll: Duration = StoreWakeup.timerHorizon
    /// Runs after the scheduler has looked for its next timer and before it sleeps: a test commits
    /// a timer in exactly that window.
    var afterLookingForNextTimer: @Sendable () async -> Void = {}

    public init(runner: SagaRunner, logger: Logger) {
        self.runner = runner
        self.logger = logger
    }

    var store: SagaStore { runner.store }

    public func run() async throws {
        let doorbell = Doorbell()
        // Most transitions schedule a step timeout later than the loop will look anyway; waking
        // for each cost two queries a step (measured by baton-bench), so only a sooner timer rings.
        let wakingAt = WakeTarget()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await listenForWakeups(store, logger: logger) { wakeup in
                        switch wakeup {
                        case .outbox?: return
                        case .timer(let due)? where due >= wakingAt.date: return
                        default: doorbell.ring()
                        }
                    }
                }
                var backoff = Backoff()
                while !Task.isCancelled {
                    do {
                        // While it fires, no announcement rings: the query below, made after
                        // they arrived, sees every timer committed until then.
                        wakingAt.date = .distantPast
                        let fired = try await fireDue()
                        backoff.reset()
                        if fired == batchSize { continue }
                        // From the query until the sleep begins, every one rings: a timer committed
                        // after the query's snapshot and announced before the sleep would
                        // otherwise wait a whole idle poll (30 s, seen in CI).
                        wakingAt.date = .distantFuture
                        let next = try await store.nextTimerDue()
                        await afterLookingForNextTimer()
                        let sleep = min(
                            next.map { Duration.milliseconds(Int64(max(0, $0.timeIntervalSinceNow) * 1000) + 1) } ?? idlePoll, idlePoll)
                        if sleep > .zero {
                            wakingAt.date = Date.now.addingTimeInterval(sleep / .seconds(1))
                            await doorbell.wait(atMost: sleep)
                        }
                    } catch {
                        if Task.isCancelled { break }
                        logger.warning("scheduler failed; backing off", metadata: ["error": "\(StoreErrors.describe(error))"])
                        try? await Task.sleep(for: backoff.next())
                    }
                }
                group.cancelAll()
            }
        }
    }

    /// Claims and fires the timers due now. - Returns: how many were claimed.
    func fireDue() async throws -> Int {
        let claimed = try await store.claimDueTimers(now: .now, limit: batchSize, lease: lease)
        // A saga's timers due at once (its deadline and a step timeout) fire one after the other,
        // in rounds; the timers of one round belong to different sagas and fire in batches, one
        // transaction each, up to ``fireConcurrency`` at once (baton-bench's timer storm,
        // docs/performance.md).
        for round in sagaRounds(claimed, sagaID: \.sagaID) {
            let chunkSize = (round.count + fireConcurrency - 1) / fireConcurrency
            await withTaskGroup(of: Void.self) { group in
                for start in stride(from: 0, to: round.count, by: chunkSize) {
                    let chunk = Array(round[start..<min(start + chunkSize, round.count)])
                    group.addTask { await runner.fire(batch: chunk) }
                }
            }
        }
        return claimed.count
    }
}

/// When a sleeping scheduler will look for due timers anyway, shared with its wake-up listener.
private final class WakeTarget: Sendable {
    private let value = Mutex(Date.distantPast)
    var date: Date {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
