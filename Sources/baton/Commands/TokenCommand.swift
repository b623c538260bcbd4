import ArgumentParser
import Crypto
import Foundation

/// `baton token`: makes a new API token and the credentials-file entry that accepts it.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make a new API token and its entry for the credentials file (--auth).",
        discussion: """
            The token is printed once, to stderr; the entry (its SHA-256, never the token) goes to
            stdout, ready to append under `tokens:`. Scopes: sagas:read, sagas:write, operator,
            workflows:write.
            """
    )

    @Option(help: "The token's name, recorded in the history of what it changes.")
    var name: String

    @Option(parsing: .upToNextOption, help: "Scopes to grant (one or more).")
    var scopes: [String]

    func validate() throws {
        let known = ["sagas:read", "sagas:write", "operator", "workflows:write"]
        for scope in scopes where !known.contains(scope) {
            throw ValidationError("unknown scope '\(scope)': one of \(known.joined(separator: ", "))")
        }
        guard !scopes.isEmpty else { throw ValidationError("give at least one scope") }
        guard !name.isEmpty, name.count <= 64 else { throw ValidationError("the name must be 1 to 64 characters") }
    }

    func run() throws {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let token =
            "baton_"
            + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let digest = SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
        FileHandle.standardError.write(Data("token (shown once; give it to the caller as BATON_TOKEN): \(token)\n".utf8))
        print("  - name: \(name)\n    sha256: \(digest)\n    scopes: [\(scopes.joined(separator: ", "))]")
    }
}
