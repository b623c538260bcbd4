import BatonStore
import Logging

/// Listens for store wake-ups until cancelled, calling `wake` with each (and with `nil` each time
/// listening (re)starts: notifications sent while nobody listened are lost, so look once).
func listenForWakeups(_ store: SagaStore, logger: Logger, _ wake: @escaping @Sendable (StoreWakeup?) -> Void) async {
    while !Task.isCancelled {
        do {
            try await store.withWakeups { wakeups in
                wake(nil)
                for try await wakeup in wakeups { wake(wakeup) }
            }
        } catch {
            if Task.isCancelled { return }
            logger.warning("listening for wake-ups failed; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
            wake(nil)
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// Exponential backoff for a service whose dependency (NATS, PostgreSQL) is failing.
struct Backoff {
    var initial: Duration = .milliseconds(100)
    var maximum: Duration = .seconds(5)
    private var current: Duration?

    mutating func next() -> Duration {
        let delay = current.map { min($0 * 2, maximum) } ?? initial
        current = delay
        return delay
    }

    mutating func reset() { current = nil }
}
