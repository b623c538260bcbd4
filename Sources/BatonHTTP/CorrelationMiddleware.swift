import BatonCore
import Foundation
import HTTPTypes
import Hummingbird

/// Gives every request a correlation id and a trace context.
///
/// The correlation id is the caller's `X-Correlation-ID`, or a new one; the trace context is the
/// caller's W3C `traceparent` when valid, or a new trace (``SagaTrace/start(from:)``). Both are
/// passed on in the request (so a handler that starts a saga stores them), put into the request's
/// logger metadata (`correlation.id`, `trace.id`), and the correlation id is returned in the
/// response's `X-Correlation-ID`.
public struct CorrelationMiddleware<Context: RequestContext>: RouterMiddleware {
    public static var header: HTTPField.Name { HTTPField.Name("X-Correlation-ID")! }
    public static var traceparentHeader: HTTPField.Name { HTTPField.Name("traceparent")! }

    /// The longest correlation id accepted: it is stored with the saga and sent on every command.
    public static var maximumLength: Int { 255 }

    public init() {}

    static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maximumLength && id.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let given = request.headers[Self.header]
        if let given, !Self.isValid(given) {
            // Answered here: this middleware runs before the one that renders problems.
            return APIProblem.badRequest(
                "X-Correlation-ID must be 1 to \(Self.maximumLength) visible ASCII characters", code: "invalid-correlation-id"
            ).response
        }
        let id = given ?? UUID().uuidString.lowercased()
        let traceparent = SagaTrace.start(from: request.headers[Self.traceparentHeader])
        var head = request.head
        head.headerFields[Self.header] = id
        head.headerFields[Self.traceparentHeader] = traceparent
        let request = Request(head: head, body: request.body)
        var context = context
        context.logger[metadataKey: "correlation.id"] = "\(id)"
        if let trace = SagaTrace.ids(of: traceparent) { context.logger[metadataKey: "trace.id"] = "\(trace.traceID)" }
        var response = try await next(request, context)
        response.headers[Self.header] = id
        return response
    }
}
