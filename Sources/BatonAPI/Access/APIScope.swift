/// What a credential allows. Every `/v1` route needs one scope; `/healthz`, `/readyz` and
/// `/metrics` need none.
public enum APIScope: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Read sagas, their history and the workflows.
    case sagasRead = "sagas:read"
    /// Start and cancel sagas.
    case sagasWrite = "sagas:write"
    /// Send signals to sagas (a payment provider's callback service needs only this).
    case sagasSignal = "sagas:signal"
    /// Act on suspended sagas: retry, skip, resolve, compensate.
    case `operator`
    /// Register workflow versions: what participants the engine may command, and in what order.
    case workflowsWrite = "workflows:write"

    public static func < (lhs: APIScope, rhs: APIScope) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Who is calling, as the credential says, and what they may do.
public struct APIIdentity: Sendable, Hashable {
    /// The static token's name or the JWT's subject: recorded with every change the caller asks for.
    public var name: String
    public var scopes: Set<APIScope>

    public init(name: String, scopes: Set<APIScope>) {
        self.name = name
        self.scopes = scopes
    }

    /// The caller of a server configured with no credentials (loopback only).
    public static let local = APIIdentity(name: "local", scopes: Set(APIScope.allCases))
}
