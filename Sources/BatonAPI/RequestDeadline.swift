import BatonHTTP
import HTTPTypes
import Hummingbird

extension BatonAPI {
    /// Runs a route's work, answering 503 with `Retry-After` when it has not finished within
    /// ``Configuration/requestTimeout`` instead of holding the client: with PostgreSQL gone, a
    /// request would otherwise wait for the connection pool to give up (about 20 s). The work is
    /// cancelled; a change it committed meanwhile is safe to send again (a submission with its
    /// `Idempotency-Key`; cancels and operator actions are refused or ignored when repeated). A
    /// long-poll (`?wait=`) gets its wait on top of the deadline.
    func withDeadline(_ request: Request, _ work: @escaping @Sendable () async throws -> Response) async throws -> Response {
        let deadline =
            request.uri.queryParameters["wait"] == nil
            ? configuration.requestTimeout : configuration.requestTimeout + configuration.maximumWait
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else {
                var headers = HTTPFields()
                headers[.retryAfter] = "\(StoreAvailability.retryAfterSeconds)"
                throw APIProblem(
                    .serviceUnavailable, code: "timeout", title: "The request did not finish in time",
                    detail:
                        "no answer within \(deadline) (the database may be unavailable); a change made meanwhile is safe to send again",
                    headers: headers)
            }
            return response
        }
    }
}
