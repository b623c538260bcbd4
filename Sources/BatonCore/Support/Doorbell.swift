import Synchronization

/// Wakes a service that sleeps until its next piece of work: rung by `LISTEN/NOTIFY` wake-ups,
/// waited on with a limit (the time of the next due timer, or a slow safety poll).
///
/// A ring while nobody waits is remembered, so a wake-up that arrives between "found no work"
/// and "going to sleep" is never lost.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    /// Whether a ring is waiting for the next `wait` (for tests).
    var isRung: Bool { state.withLock { $0.rung } }

    /// Returns when rung or when the task is cancelled.
    ///
    /// Prefer it to ``wait(atMost:)`` when nothing needs a timeout: that one's alarm task lives
    /// until its limit passes, even after a ring (a cancelled `Task.sleep` keeps its timer). Under
    /// load, a waiter rung a thousand times a second with a one-minute limit held 60,000 alarms:
    /// about 22 MB of `baton serve`'s heap (found with heaptrack under baton-bench).
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ringNow = state.withLock { state -> Bool in
                    if state.rung {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if ringNow { continuation.resume() }
            }
        } onCancel: {
            ring()
        }
    }

    /// Returns when rung, when `limit` has passed, or when the task is cancelled.
    public func wait(atMost limit: Duration) async {
        // Rings only when the limit passes. (A cancelled alarm that rang anyway left the bell
        // rung after every real ring, so the next wait returned at once: idle services spun,
        // about 1,300 empty claim transactions a second, found by baton-bench.)
        let alarm = Task {
            do {
                try await Task.sleep(for: limit)
                self.ring()
            } catch {}
        }
        defer { alarm.cancel() }
        await wait()
    }
}
