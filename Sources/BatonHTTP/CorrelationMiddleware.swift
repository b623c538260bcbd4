import Foundation
import HTTPTypes
import Hummingbird

/// Gives every request a correlation id: the caller's `X-Correlation-ID`, or a new one. The id is
/// passed on in the request (so a handler that starts a saga stores it), put into the request's
/// logger metadata as `correlation.id`, and returned in the response's `X-Correlation-ID`.
public struct CorrelationMiddleware<Context: RequestContext>: RouterMiddleware {
    public static var header: HTTPField.Name { HTTPField.Name("X-Correlation-ID")! }

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let given = request.headers[Self.header].flatMap { $0.isEmpty || $0.count > 255 ? nil : $0 }
        let id = given ?? UUID().uuidString.lowercased()
        var head = request.head
        head.headerFields[Self.header] = id
        let request = Request(head: head, body: request.body)
        var context = context
        context.logger[metadataKey: "correlation.id"] = "\(id)"
        var response = try await next(request, context)
        response.headers[Self.header] = id
        return response
    }
}
