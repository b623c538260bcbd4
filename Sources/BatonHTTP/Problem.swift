import BatonCore
import Foundation
import Hummingbird

/// An error answered as RFC 9457 `application/problem+json`, with a detail that says what to fix.
public struct APIProblem: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var title: String
    public var detail: String
    /// A short machine-readable name (`invalid-input`), also the last part of the `type` URI.
    public var code: String
    /// Extra members (for example `errors`, the list of input problems).
    public var extra: [String: JSONValue]

    public init(_ status: HTTPResponse.Status, code: String, title: String, detail: String, extra: [String: JSONValue] = [:]) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extra = extra
    }

    public static func badRequest(_ detail: String, code: String = "bad-request") -> APIProblem {
        APIProblem(.badRequest, code: code, title: "The request is malformed", detail: detail)
    }

    public static func notFound(_ detail: String) -> APIProblem {
        APIProblem(.notFound, code: "not-found", title: "Not found", detail: detail)
    }

    public var body: JSONValue {
        var members: [String: JSONValue] = [
            "type": .string("https://baton.dev/problems/\(code)"), "title": .string(title), "status": .integer(Int64(status.code)),
            "detail": .string(detail),
        ]
        for (key, value) in extra { members[key] = value }
        return .object(members)
    }

    public var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        return Response(
            status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body.canonicalJSON)))
    }
}

/// Turns every error a route throws into problem+json: the API's own problems as they are, the
/// router's (no route, method not allowed, body too large) by their status, anything else as a 500
/// that hides the internals (and is logged).
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as APIProblem {
            return problem.response
        } catch let error as any HTTPResponseError {
            let status = error.status
            let detail: String =
                switch status {
                case .notFound: "no route for \(request.method) \(request.uri.path)"
                case .methodNotAllowed: "\(request.method) is not allowed on \(request.uri.path)"
                case .contentTooLarge: "the request body is larger than the server accepts"
                default: status.reasonPhrase
                }
            return APIProblem(status, code: "http-\(status.code)", title: status.reasonPhrase, detail: detail).response
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return APIProblem(
                .internalServerError, code: "internal", title: "Internal error",
                detail: "the server failed to handle the request; it has been logged"
            ).response
        }
    }
}
