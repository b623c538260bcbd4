import Dispatch
import Foundation
import Logging
import Synchronization

/// The bound on a process's exit after SIGTERM or SIGINT that holds whatever its services wait for.
///
/// The service group drains, then cancels what is still running, and every service returns when it
/// is cancelled (docs/operations.md, Shutdown). An await that a library never completes (PostgresNIO
/// 1.33.2 leaves a statement written to a connection the server closed waiting forever, and only
/// the known paths to it are checked) would still hold the process. The deadline does not rely on
/// the awaits: it runs on a Dispatch timer, outside the tasks it guards, and ends the process. That
/// loses nothing: it is what a supervisor's SIGKILL after the bound would do, and every saga is
/// recoverable from PostgreSQL and JetStream at any point.
public enum ShutdownDeadline {
    /// How long a service group drains before it cancels what still runs
    /// (`ServiceGroupConfiguration.maximumGracefulShutdownDuration`).
    public static let drain = Duration.seconds(10)

    /// How long after the signal the process exits at the latest: the drain, the cancellation, and
    /// what comes after the group (`baton dev` stopping its servers), within the 15 s the operations
    /// guide promises.
    public static let exit = Duration.seconds(12)

    /// From the first SIGTERM or SIGINT, gives the process `limit` to exit; after that it logs an
    /// error, runs `beforeExit` (a `baton dev` stops its own servers) and exits with status 1.
    public static func arm(
        _ limit: Duration = exit, logger: Logger, process: String, beforeExit: @escaping @Sendable () -> Void = {}
    ) {
        let armed = Mutex(false)
        let queue = DispatchQueue(label: "baton.shutdown-deadline")
        let fire: @Sendable () -> Void = {
            let first = armed.withLock { armed in
                defer { armed = true }
                return !armed
            }
            guard first else { return }
            queue.asyncAfter(deadline: .now() + .milliseconds(Int(limit / .milliseconds(1)))) {
                logger.error(
                    "\(process) did not finish shutting down within \(limit) of the signal; exiting now (nothing is lost: every saga is recoverable from PostgreSQL and JetStream)"
                )
                beforeExit()
                // `_exit`, not `exit`: the handlers `exit` runs belong to the very code that hangs.
                fflush(nil)
                _exit(EXIT_FAILURE)
            }
        }
        for signalNumber in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            // The handler holds its source: it lives as long as the process, as the signal does.
            source.setEventHandler {
                _ = source
                fire()
            }
            source.resume()
        }
    }
}
