import BatonTransport
import Foundation
import Testing

/// The real servers `scripts/test` starts, found through the environment it exports.
///
/// Integration tests never skip: without the servers they fail, saying how to run them.
enum TestServers {
    static func url(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            Issue.record("\(name) is not set: run the tests with ./scripts/test, which starts PostgreSQL and NATS")
            throw MissingServer(variable: name)
        }
        return value
    }

    static var databaseURL: String { get throws { try url("BATON_DATABASE_URL") } }
    static var natsURL: String { get throws { try url("BATON_NATS_URL") } }

    struct MissingServer: Error { var variable: String }
}

extension NATSConnection {
    /// Connects to a nats-server a test has just started, trying for up to 5 s while it comes up.
    static func connectWhenUp(_ options: Options) async throws -> NATSConnection {
        for _ in 0..<50 {
            if let connection = try? await connect(options) { return connection }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await connect(options)
    }
}
