import BatonCore
import BatonHTTP
import Hummingbird

/// What the Transactions and Payments APIs share: problem+json errors, JSON bodies, ids from paths.
enum ServiceHTTP {
    static let bodyLimit = 64 * 1024

    /// A router whose errors are problem+json, with `CheckoutError` answered as 404, 409 or 422.
    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.middlewares.add(CorrelationMiddleware())
        router.middlewares.add(ProblemMiddleware())
        router.middlewares.add(CheckoutErrorMiddleware())
        router.get("/healthz") { _, _ in JSONBodies.response(["status": "ok"]) }
        return router
    }

    /// The request's body as a JSON object (an empty body is an empty object).
    static func object(_ request: Request) async throws -> JSONValue {
        let body = try await JSONBodies.read(request, limit: bodyLimit) ?? [:]
        guard case .object = body else { throw APIProblem.badRequest("the body must be a JSON object") }
        return body
    }

    static func id(_ context: BasicRequestContext) throws -> String {
        guard let id = context.parameters.get("id"), !id.isEmpty else { throw APIProblem.badRequest("an id is required in the path") }
        return id
    }
}

/// Answers a refused request as the problem it is.
struct CheckoutErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as CheckoutError {
            switch error {
            case .notFound(let detail): throw APIProblem.notFound(detail)
            case .conflict(let detail): throw APIProblem(.conflict, code: "conflict", title: "Not allowed in this state", detail: detail)
            case .invalid(let detail):
                throw APIProblem(.unprocessableContent, code: "invalid-input", title: "The input is not valid", detail: detail)
            }
        }
    }
}
