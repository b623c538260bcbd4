import Hummingbird
import Logging

/// The request context of Baton's API: Hummingbird's, plus who is calling.
public struct BatonRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller, once ``AuthenticationMiddleware`` has read the credentials (every `/v1` route).
    public var identity: APIIdentity?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.identity = nil
    }

    /// The caller, when it holds `scope`.
    /// - Throws: 401 when no caller was authenticated, 403 naming the scope when it lacks it.
    func require(_ scope: APIScope) throws -> APIIdentity {
        guard let identity else { throw APIAccessPolicy.unauthorized("this route needs credentials", error: nil) }
        guard identity.scopes.contains(scope) else { throw APIAccessPolicy.forbidden(identity, needs: scope) }
        return identity
    }
}

/// Reads the `Authorization` header of every request it guards into ``BatonRequestContext/identity``
/// (401 when the credentials are missing or not valid), and names the caller in the request's logs.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = BatonRequestContext
    let policy: APIAccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let identity = try await policy.authenticate(request.headers[.authorization])
        context.identity = identity
        context.logger[metadataKey: "caller"] = "\(identity.name)"
        return try await next(request, context)
    }
}
