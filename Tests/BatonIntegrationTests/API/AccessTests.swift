import BatonAPI
import BatonCore
import BatonEngine
import BatonStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import Testing
import _CryptoExtras

/// Who may do what over HTTP: static tokens with scopes, JWTs against a JWKS, the caller recorded
/// with what it changed.
@Suite("API access")
struct AccessTests {
    static let tokens: [APIAccessPolicy.StaticToken] = [
        .init(name: "reader", token: "read-token", scopes: [.sagasRead]),
        .init(name: "submitter", token: "submit-token", scopes: [.sagasRead, .sagasWrite]),
        .init(name: "alice-oncall", token: "operator-token", scopes: [.sagasRead, .operator]),
        .init(name: "deployer", token: "deploy-token", scopes: [.workflowsWrite]),
    ]

    static func headers(_ authorization: String?, json: Bool = false) -> HTTPFields {
        var headers = HTTPFields()
        if let authorization { headers[.authorization] = authorization }
        if json { headers[.contentType] = "application/json" }
        return headers
    }

    @Test("each route needs its scope: 401 without credentials, 403 naming the missing scope; callers are recorded")
    func staticTokens() async throws {
        try await APITests.withAPI(access: APIAccessPolicy(tokens: Self.tokens)) { client, store in
            let anonymous = try await client.execute(uri: "/v1/sagas", method: .get)
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.wwwAuthenticate] == "Bearer realm=\"baton\"")
            let wrong = try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("Bearer nope"))
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.wwwAuthenticate]?.contains("invalid_token") == true)
            #expect(try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("bearer read-token")).status == .ok)
            #expect(try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("BEARER  read-token")).status == .ok)
            #expect(
                try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("Basic cmVhZC10b2tlbg==")).status
                    == .unauthorized)

            let refused = try await client.execute(
                uri: "/v1/sagas", method: .post, headers: Self.headers("Bearer read-token", json: true),
                body: ByteBuffer(string: APITests.validSubmission))
            #expect(refused.status == .forbidden)
            #expect(try APITests.json(refused).value(at: ["detail"])?.stringValue?.contains("sagas:write") == true)
            #expect(refused.headers[.wwwAuthenticate]?.contains("insufficient_scope") == true)

            let submitted = try await client.execute(
                uri: "/v1/sagas", method: .post, headers: Self.headers("Bearer submit-token", json: true),
                body: ByteBuffer(string: APITests.validSubmission))
            #expect(submitted.status == .accepted)
            let id = try #require(try APITests.json(submitted).value(at: ["id"])?.stringValue)
            let cancelled = try await client.execute(
                uri: "/v1/sagas/\(id)/cancel", method: .post, headers: Self.headers("Bearer submit-token", json: true),
                body: ByteBuffer(string: #"{"reason":"customer asked"}"#))
            #expect(cancelled.status == .accepted)
            // The submitter may not act as an operator; the operator's refused action is recorded with its name.
            let action = #"{"action":"resolve","reason":"checked the ledger"}"#
            #expect(
                try await client.execute(
                    uri: "/v1/sagas/\(id)/actions", method: .post, headers: Self.headers("Bearer submit-token", json: true),
                    body: ByteBuffer(string: action)
                ).status == .forbidden)
            #expect(
                try await client.execute(
                    uri: "/v1/sagas/\(id)/actions", method: .post, headers: Self.headers("Bearer operator-token", json: true),
                    body: ByteBuffer(string: action)
                ).status == .conflict)
            let history = try await store.history(sagaID: id).map(\.entry)
            #expect(history.first { $0.kind == .sagaStarted }?.actor == "submitter")
            #expect(history.first { $0.kind == .cancelRequested }?.actor == "submitter")
            #expect(history.first { $0.kind == .operatorActionRefused }?.actor == "alice-oncall")
            #expect(history.contains { $0.kind == .commandSent && $0.actor == "submitter" })
            let shown = try APITests.json(
                try await client.execute(uri: "/v1/sagas/\(id)/history", method: .get, headers: Self.headers("Bearer read-token")))
            #expect(shown.value(at: ["entries", "0", "actor"]) == "submitter")

            let v2 = StoreFixture.definitionSource.replacingOccurrences(of: "version: 1", with: "version: 2")
            var yaml = Self.headers("Bearer submit-token")
            yaml[.contentType] = "application/yaml"
            #expect(
                try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: v2)).status
                    == .forbidden)
            yaml[.authorization] = "Bearer deploy-token"
            let registered = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: v2))
            #expect(registered.status == .created)
            #expect(try APITests.json(registered).value(at: ["registered_by"]) == "deployer")
            #expect(
                try await client.execute(uri: "/v1/workflows", method: .get, headers: Self.headers("Bearer deploy-token")).status
                    == .forbidden)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }

    /// A JWKS file with one ES256 and one RS256 key, and the keys that sign for them.
    struct IdentityProvider {
        let signers = JWTKeyCollection()
        let jwksPath: String

        init() async throws {
            let ecdsa = ES256PrivateKey()
            let rsa = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
            await signers.add(ecdsa: ecdsa, kid: "ec-1")
            await signers.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
            let (x, y) = try #require(ecdsa.publicKey.parameters)
            let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
            func base64URL(_ data: Data) -> String {
                data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                    .replacingOccurrences(of: "=", with: "")
            }
            let jwks = """
                {"keys": [
                  {"kty": "EC", "crv": "P-256", "x": "\(x)", "y": "\(y)", "kid": "ec-1", "alg": "ES256", "use": "sig"},
                  {"kty": "RSA", "n": "\(base64URL(modulus))", "e": "\(base64URL(exponent))", "kid": "rsa-1", "alg": "RS256", "use": "sig"}
                ]}
                """
            jwksPath = FileManager.default.temporaryDirectory.appending(path: "baton-jwks-\(UUID().uuidString).json").path
            try jwks.write(toFile: jwksPath, atomically: true, encoding: .utf8)
        }

        func token(
            kid: String, subject: String = "svc-checkout", issuer: String = "https://idp.test/", audience: String = "baton",
            scope: String = "sagas:read sagas:write", expires: Date = .now + 300
        ) async throws -> String {
            try await signers.sign(
                TestClaims(
                    sub: .init(value: subject), iss: .init(value: issuer), aud: .init(value: [audience]), exp: .init(value: expires),
                    scope: scope),
                kid: JWKIdentifier(string: kid))
        }
    }

    struct TestClaims: JWTPayload {
        var sub: SubjectClaim
        var iss: IssuerClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var scope: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    @Test("JWTs signed with RS256 or ES256 by the JWKS's keys, for the issuer and audience, are accepted with their scopes")
    func jwts() async throws {
        let provider = try await IdentityProvider()
        defer { try? FileManager.default.removeItem(atPath: provider.jwksPath) }
        let verifier = try await JWTVerifier(source: provider.jwksPath, issuer: "https://idp.test/", audience: "baton")
        try await APITests.withAPI(access: APIAccessPolicy(jwt: verifier)) { client, store in
            for kid in ["ec-1", "rsa-1"] {
                let token = try await provider.token(kid: kid)
                let submitted = try await client.execute(
                    uri: "/v1/sagas", method: .post, headers: Self.headers("Bearer \(token)", json: true),
                    body: ByteBuffer(string: APITests.validSubmission))
                #expect(submitted.status == .accepted, "\(kid)")
                let id = try #require(try APITests.json(submitted).value(at: ["id"])?.stringValue)
                #expect(try await store.history(sagaID: id).first?.entry.actor == "svc-checkout")
            }
            let readOnly = try await provider.token(kid: "ec-1", scope: "sagas:read")
            #expect(
                try await client.execute(
                    uri: "/v1/sagas", method: .post, headers: Self.headers("Bearer \(readOnly)", json: true),
                    body: ByteBuffer(string: APITests.validSubmission)
                ).status == .forbidden)
            let refusals: [(String, String)] = [
                (try await provider.token(kid: "ec-1", audience: "someone-else"), "audience"),
                (try await provider.token(kid: "rsa-1", issuer: "https://evil.test/"), "issuer"),
                (try await provider.token(kid: "ec-1", expires: .now - 60), "exp"),
            ]
            for (token, reason) in refusals {
                let response = try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("Bearer \(token)"))
                #expect(response.status == .unauthorized, "\(reason)")
            }
            // Signed by a key the JWKS does not hold, and an HMAC token (the algorithm-confusion attack).
            let stranger = JWTKeyCollection()
            await stranger.add(ecdsa: ES256PrivateKey(), kid: "ec-1")
            await stranger.add(hmac: HMACKey(from: String(repeating: "k", count: 64)), digestAlgorithm: .sha256, kid: "hs")
            for kid in ["ec-1", "hs"] {
                let forged = try await stranger.sign(
                    TestClaims(sub: "mallory", iss: "https://idp.test/", aud: "baton", exp: .init(value: .now + 300), scope: "operator"),
                    kid: JWKIdentifier(string: kid))
                #expect(
                    try await client.execute(uri: "/v1/sagas", method: .get, headers: Self.headers("Bearer \(forged)")).status
                        == .unauthorized, "\(kid)")
            }
        }
    }

    @Test("the JWKS can come from a URL")
    func jwksFromURL() async throws {
        let provider = try await IdentityProvider()
        defer { try? FileManager.default.removeItem(atPath: provider.jwksPath) }
        let jwks = try String(contentsOfFile: provider.jwksPath, encoding: .utf8)
        let router = Router()
        router.get("/.well-known/jwks.json") { _, _ in jwks }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let verifier = try await JWTVerifier(
                source: "http://127.0.0.1:\(port)/.well-known/jwks.json", issuer: "https://idp.test/", audience: "baton")
            let identity = try await verifier.identity(of: try await provider.token(kid: "rsa-1"))
            #expect(identity == APIIdentity(name: "svc-checkout", scopes: [.sagasRead, .sagasWrite]))
        }
    }

    @Test("a credentials file is read with hashed tokens and scopes; mistakes name the entry")
    func credentialsFile() async throws {
        let path = FileManager.default.temporaryDirectory.appending(path: "baton-auth-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let digest = SHA256.hash(data: Data("s3cret".utf8)).map { String(format: "%02x", $0) }.joined()
        try "tokens:\n  - name: ci\n    sha256: \(digest)\n    scopes: [workflows:write, sagas:read]\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let policy = try await APIAccessPolicy.load(file: path)
        let identity = try await policy.authenticate("Bearer s3cret")
        #expect(identity == APIIdentity(name: "ci", scopes: [.workflowsWrite, .sagasRead]))
        try "tokens:\n  - name: ci\n    sha256: abc\n    scopes: [everything]\n".write(toFile: path, atomically: true, encoding: .utf8)
        await #expect { try await APIAccessPolicy.load(file: path) } throws: { "\($0)".contains("tokens[0].sha256") }
    }
}
