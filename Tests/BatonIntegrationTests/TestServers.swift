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
