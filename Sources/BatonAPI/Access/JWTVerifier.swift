import Foundation
import JWTKit
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Verifies JWTs signed by an identity provider: RS256 or ES256 (the algorithms its JWKS keys
/// declare), with the configured issuer and audience, not expired, not before their time. The
/// subject names the caller; the scopes come from `scope` (space-separated, RFC 8693) or `scp`
/// (a list or a space-separated string).
///
/// The JWKS is read from a file or an `http(s)` URL at start, and again (at most once a minute)
/// when a token names a key it does not hold, so a provider can rotate its keys.
public final class JWTVerifier: Sendable {
    /// Why a token was refused, for the 401's detail.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Where the JWKS is.
    public let source: String
    public let issuer: String?
    public let audience: String?
    private let keys: Mutex<JWTKeyCollection>
    private let lastLoad: Mutex<ContinuousClock.Instant>
    static let reloadInterval = Duration.seconds(60)

    /// Reads the JWKS at `source` and checks it holds at least one usable key.
    public init(source: String, issuer: String?, audience: String?) async throws {
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.keys = Mutex(try await Self.load(source))
        self.lastLoad = Mutex(.now)
    }

    static func load(_ source: String) async throws -> JWTKeyCollection {
        let json: String
        if source.hasPrefix("https://") || source.hasPrefix("http://") {
            guard let url = URL(string: source) else { throw Refusal(reason: "the JWKS URL '\(source)' is not a URL") }
            let (data, _) = try await URLSession.shared.data(for: URLRequest(url: url, timeoutInterval: 10))
            json = String(decoding: data, as: UTF8.self)
        } else {
            json = try String(contentsOfFile: source, encoding: .utf8)
        }
        return try await JWTKeyCollection().add(jwksJSON: json)
    }

    /// The caller a token names.
    /// - Throws: ``Refusal`` saying why the token is not accepted.
    public func identity(of token: String) async throws -> APIIdentity {
        let claims: Claims
        do {
            claims = try await keys.withLock { $0 }.verify(token, as: Claims.self)
        } catch {
            // A key the provider rotated in since the JWKS was read: read it again, at most once a
            // minute whatever the tokens say.
            let reload = lastLoad.withLock { last in
                guard ContinuousClock.now - last >= Self.reloadInterval else { return false }
                last = .now
                return true
            }
            guard reload, let fresh = try? await Self.load(source) else { throw Refusal(reason: Self.describe(error)) }
            keys.withLock { $0 = fresh }
            do {
                claims = try await fresh.verify(token, as: Claims.self)
            } catch {
                throw Refusal(reason: Self.describe(error))
            }
        }
        if let issuer, claims.iss?.value != issuer {
            throw Refusal(reason: "its issuer is '\(claims.iss?.value ?? "none")', not '\(issuer)'")
        }
        if let audience, !(claims.aud?.value.contains(audience) ?? false) {
            throw Refusal(reason: "its audience does not include '\(audience)'")
        }
        let names = (claims.scope ?? "").split(separator: " ").map(String.init) + (claims.scp?.values ?? [])
        return APIIdentity(name: claims.sub.value, scopes: Set(names.compactMap(APIScope.init(rawValue:))))
    }

    static func describe(_ error: any Error) -> String {
        if let jwt = error as? JWTError { return jwt.reason ?? "\(jwt.errorType)" }
        return "\(error)"
    }

    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var iss: IssuerClaim?
        var aud: AudienceClaim?
        var exp: ExpirationClaim
        var nbf: NotBeforeClaim?
        var scope: String?
        var scp: ScopeList?

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            try nbf?.verifyNotBefore()
        }
    }

    /// `scp` as a list, or as one space-separated string.
    struct ScopeList: Codable, Sendable {
        var values: [String]

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let list = try? container.decode([String].self) {
                values = list
            } else {
                values = try container.decode(String.self).split(separator: " ").map(String.init)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(values)
        }
    }
}
