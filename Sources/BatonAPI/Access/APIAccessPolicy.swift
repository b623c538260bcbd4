import BatonCore
import BatonHTTP
import Crypto
import Foundation
import HTTPTypes

/// Who may call the API: static bearer tokens (stored as SHA-256 digests, never in clear), and
/// JWTs verified against a JWKS. With neither, the API is open to everyone who can reach it, which
/// `baton serve` allows on loopback only.
public struct APIAccessPolicy: Sendable {
    /// A bearer token known by its SHA-256 digest.
    public struct StaticToken: Sendable {
        public var name: String
        /// SHA-256 of the token's UTF-8 bytes.
        public var digest: [UInt8]
        public var scopes: Set<APIScope>

        public init(name: String, digest: [UInt8], scopes: Set<APIScope>) {
            self.name = name
            self.digest = digest
            self.scopes = scopes
        }

        /// A token given in clear (tests, `baton dev`), kept only as its digest.
        public init(name: String, token: String, scopes: Set<APIScope>) {
            self.init(name: name, digest: Array(SHA256.hash(data: Data(token.utf8))), scopes: scopes)
        }
    }

    public var tokens: [StaticToken]
    public var jwt: JWTVerifier?

    public init(tokens: [StaticToken] = [], jwt: JWTVerifier? = nil) {
        self.tokens = tokens
        self.jwt = jwt
    }

    /// No credentials configured: every caller is ``APIIdentity/local``.
    public static let open = APIAccessPolicy()

    public var isOpen: Bool { tokens.isEmpty && jwt == nil }

    /// The caller named by an `Authorization` header.
    /// - Throws: a 401 ``APIProblem`` with `WWW-Authenticate` when the header is missing, malformed,
    ///   or names no valid credential.
    public func authenticate(_ authorization: String?) async throws -> APIIdentity {
        if isOpen { return .local }
        guard let authorization, let credential = Self.bearerCredential(authorization) else {
            throw Self.unauthorized("send Authorization: Bearer <token> with an API token or a JWT", error: nil)
        }
        // Fixed-length digests compared byte by byte without stopping early, against every token:
        // the time taken does not depend on the token or on how much of it matches.
        let presented = Array(SHA256.hash(data: Data(credential.utf8)))
        var matched: StaticToken?
        for token in tokens {
            var difference: UInt8 = 0
            for (left, right) in zip(token.digest, presented) { difference |= left ^ right }
            if difference == 0 { matched = token }
        }
        if let matched { return APIIdentity(name: matched.name, scopes: matched.scopes) }
        if let jwt, credential.split(separator: ".", omittingEmptySubsequences: false).count == 3 {
            do {
                return try await jwt.identity(of: credential)
            } catch let refusal as JWTVerifier.Refusal {
                throw Self.unauthorized("the JWT is not accepted: \(refusal.reason)", error: "invalid_token")
            }
        }
        throw Self.unauthorized("the bearer credential is not a known API token or a valid JWT", error: "invalid_token")
    }

    /// The credential of `Bearer <credential>`; the scheme is case-insensitive (RFC 9110).
    static func bearerCredential(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let credential = parts[1].trimmingCharacters(in: .whitespaces)
        guard !credential.isEmpty, credential.utf8.count <= 8192 else { return nil }
        return credential
    }

    static func unauthorized(_ detail: String, error: String?) -> APIProblem {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"baton\"" + (error.map { ", error=\"\($0)\"" } ?? "")
        return APIProblem(.unauthorized, code: "unauthorized", title: "Authentication required", detail: detail, headers: headers)
    }

    /// A 403 naming the scope the caller lacks.
    static func forbidden(_ identity: APIIdentity, needs scope: APIScope) -> APIProblem {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"baton\", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\""
        let held = identity.scopes.sorted().map(\.rawValue).joined(separator: ", ")
        return APIProblem(
            .forbidden, code: "insufficient-scope", title: "Not allowed",
            detail: "'\(identity.name)' may not do this: it needs the scope \(scope.rawValue) (it has: \(held.isEmpty ? "none" : held))",
            headers: headers)
    }
}
