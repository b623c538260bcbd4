import BatonHTTP
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import Synchronization

extension BatonAPI {
    /// Runs a route's work, answering 503 with `Retry-After` when it has not finished within
    /// ``Configuration/requestTimeout`` instead of holding the client: with PostgreSQL gone, a
    /// request would otherwise wait for the connection pool to give up (about 20 s). The work is
    /// cancelled; a change it committed meanwhile is safe to send again (a submission with its
    /// `Idempotency-Key`; cancels and operator actions are refused or ignored when repeated). A
    /// long-poll (`?wait=`) gets its wait on top of the deadline.
    ///
    /// The alarm is a task scheduled on an event loop, not a child task in `Task.sleep`: a
    /// cancelled `Task.sleep` keeps its task and timer allocated until its deadline passes, so a
    /// burst of requests left one live 10-second sleep per request (heaptrack: about 20 MB of the
    /// heap's 28 MB peak during a 10,000-saga submission). A scheduled task is freed when it is
    /// cancelled.
    func withDeadline(_ request: Request, _ work: @escaping @Sendable () async throws -> Response) async throws -> Response {
        let deadline =
            request.uri.queryParameters["wait"] == nil
            ? configuration.requestTimeout : configuration.requestTimeout + configuration.maximumWait
        // Task-local values (the logger's and the trace's context) go with the work.
        let running = Task { try await work() }
        let expiry = DeadlineExpiry()
        let alarm = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(deadline)) {
            expiry.expire()
            running.cancel()
        }
        defer { alarm.cancel() }
        let result = await withTaskCancellationHandler {
            await running.result
        } onCancel: {
            running.cancel()
        }
        guard expiry.hasExpired else { return try result.get() }
        throw StoreAvailability.retryLater(
            code: "timeout", title: "The request did not finish in time",
            detail: "no answer within \(deadline) (the database may be unavailable); a change made meanwhile is safe to send again")
    }
}

/// Whether a request's deadline passed before its work finished.
private final class DeadlineExpiry: Sendable {
    private let expired = Atomic(false)

    func expire() { expired.store(true, ordering: .releasing) }
    var hasExpired: Bool { expired.load(ordering: .acquiring) }
}
