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
    /// Response headers that go with it (`Allow`, `Retry-After`, `WWW-Authenticate`).
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status,
        code: String,
        title: String,
        detail: String,
        extra: [String: JSONValue] = [:],
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers = headers
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
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(
            status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body.canonicalJSON)))
    }
}

/// Turns every error a route throws into problem+json: the API's own problems as they are, errors
/// the service knows how to answer (``classify``: a database that is down is a 503), the router's
/// (no route, body too large) by their status, a known path asked with another method as a 405
/// with `Allow`, and anything else as a 500 that hides the internals (and is logged).
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The routes served, as `(method, path)` with `{name}` for a path parameter: a request for a
    /// known path with another method is a 405 naming the methods that path has.
    let routes: [(method: String, path: String)]
    /// Turns an error a service knows into its answer, or `nil` for a 500.
    let classify: @Sendable (any Error) -> APIProblem?
    /// How an unexpected error is written into the log.
    let describe: @Sendable (any Error) -> String

    public init(
        routes: [(method: String, path: String)] = [],
        classify: @escaping @Sendable (any Error) -> APIProblem? = { _ in nil },
        describe: @escaping @Sendable (any Error) -> String = { String(reflecting: $0) }
    ) {
        self.routes = routes
        self.classify = classify
        self.describe = describe
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as APIProblem {
            return problem.response
        } catch let error as any HTTPResponseError {
            let status = error.status
            if status == .notFound || status == .methodNotAllowed, let allowed = allowedMethods(for: request.uri.path), !allowed.isEmpty {
                var headers = HTTPFields()
                headers[.allow] = allowed.joined(separator: ", ")
                return APIProblem(
                    .methodNotAllowed, code: "method-not-allowed", title: "Method not allowed",
                    detail: "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))",
                    headers: headers
                ).response
            }
            let detail: String =
                switch status {
                case .notFound: "no route for \(request.method) \(request.uri.path)"
                case .methodNotAllowed: "\(request.method) is not allowed on \(request.uri.path)"
                case .contentTooLarge: "the request body is larger than the server accepts"
                default: status.reasonPhrase
                }
            return APIProblem(status, code: "http-\(status.code)", title: status.reasonPhrase, detail: detail).response
        } catch {
            if let problem = classify(error) {
                context.logger.warning(
                    "request refused: a dependency is unavailable",
                    metadata: ["error": "\(describe(error))", "path": "\(request.uri.path)"])
                return problem.response
            }
            context.logger.error("request failed", metadata: ["error": "\(describe(error))", "path": "\(request.uri.path)"])
            return APIProblem(
                .internalServerError, code: "internal", title: "Internal error",
                detail: "the server failed to handle the request; it has been logged"
            ).response
        }
    }

    /// The methods the routes serve on `path`, or `nil` when no route has that path.
    func allowedMethods(for path: String) -> [String]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let methods = routes.filter { route in
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: true)
            return pattern.count == segments.count
                && zip(pattern, segments).allSatisfy { expected, given in expected.hasPrefix("{") || expected == given }
        }.map(\.method)
        return methods.isEmpty ? nil : Array(Set(methods)).sorted()
    }
}
