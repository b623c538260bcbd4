import BatonCore
import Foundation

extension APIAccessPolicy {
    /// A credentials file that cannot be used, with what is wrong.
    public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads a credentials file (YAML or JSON, `docs/operations.md`, Security):
    ///
    /// ```yaml
    /// tokens:
    ///   - name: deployer                # recorded in the history of what it changes
    ///     sha256: 9f86d081884c7d65…     # SHA-256 of the token, in hex (`baton token` makes both)
    ///     scopes: [workflows:write]
    /// jwt:
    ///   jwks: https://idp.example.com/.well-known/jwks.json   # or a file
    ///   issuer: https://idp.example.com/
    ///   audience: baton
    /// ```
    /// - Throws: ``ConfigurationError`` naming the entry and the field.
    public static func load(file path: String) async throws -> APIAccessPolicy {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(description: "\(path): cannot be read (\(error.localizedDescription))")
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: text, format: WorkflowFormat(fileName: path) ?? .yaml)
        } catch {
            throw ConfigurationError(description: "\(path): not valid YAML or JSON: \(error)")
        }
        return try await policy(from: document, source: path)
    }

    static func policy(from document: JSONValue, source: String) async throws -> APIAccessPolicy {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError(description: "\(source): \(message)") }
        guard case .object(let members) = document else { throw fail("must be a mapping with tokens and/or jwt") }
        for key in members.keys where key != "tokens" && key != "jwt" { throw fail("unknown key '\(key)' (allowed: tokens, jwt)") }
        var policy = APIAccessPolicy()
        var names: Set<String> = []
        var entries: [JSONValue] = []
        if let value = members["tokens"], value != .null {
            guard case .array(let list) = value else { throw fail("tokens must be a list") }
            entries = list
        }
        for (index, entry) in entries.enumerated() {
            let at = "tokens[\(index)]"
            guard case .object(let fields) = entry else { throw fail("\(at) must be a mapping with name, sha256 and scopes") }
            guard let name = fields["name"]?.stringValue, !name.isEmpty, name.count <= 64 else {
                throw fail("\(at).name is required (1 to 64 characters)")
            }
            guard names.insert(name).inserted else { throw fail("\(at).name '\(name)' is used twice") }
            guard let hex = fields["sha256"]?.stringValue, let digest = Self.bytes(hex: hex), digest.count == 32 else {
                throw fail("\(at).sha256 must be the token's SHA-256 in hex (64 characters); `baton token` prints one")
            }
            policy.tokens.append(StaticToken(name: name, digest: digest, scopes: try scopes(fields["scopes"], at: "\(at).scopes", fail)))
        }
        if let jwt = members["jwt"], jwt != .null {
            guard case .object(let fields) = jwt, let jwks = fields["jwks"]?.stringValue, !jwks.isEmpty else {
                throw fail("jwt.jwks is required: the JWKS file or URL")
            }
            for key in fields.keys where !["jwks", "issuer", "audience"].contains(key) {
                throw fail("unknown key 'jwt.\(key)' (allowed: jwks, issuer, audience)")
            }
            do {
                policy.jwt = try await JWTVerifier(
                    source: jwks, issuer: fields["issuer"]?.stringValue, audience: fields["audience"]?.stringValue)
            } catch {
                throw fail("jwt.jwks '\(jwks)' cannot be used: \(JWTVerifier.describe(error))")
            }
        }
        guard !policy.isOpen else { throw fail("names no tokens and no jwt") }
        return policy
    }

    static func scopes(_ value: JSONValue?, at: String, _ fail: (String) -> ConfigurationError) throws -> Set<APIScope> {
        guard case .array(let list)? = value, !list.isEmpty else {
            throw fail("\(at) must list one or more of \(APIScope.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return Set(
            try list.map { element in
                guard let text = element.stringValue, let scope = APIScope(rawValue: text) else {
                    throw fail(
                        "\(at): unknown scope \(element.canonicalJSON) (one of \(APIScope.allCases.map(\.rawValue).joined(separator: ", ")))"
                    )
                }
                return scope
            })
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.lowercased().utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
