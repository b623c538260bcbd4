import Crypto
import Foundation

/// One version of the database schema: the statements that take the schema from the previous
/// version to this one.
///
/// Migrations are append-only. Once released, a migration's statements never change (its checksum
/// is recorded and checked at every start-up); a change to the schema is a new migration.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    /// Run in order, in one transaction with every other pending migration. PostgresNIO speaks the
    /// extended query protocol, which takes one statement per query, hence a list.
    public var statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// SHA-256 (hex) of the statements, so an edited released migration is caught at start-up.
    public var checksum: String {
        let text = statements.joined(separator: "\n;\n")
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

extension Migration {
    /// Every migration, in version order.
    public static let all: [Migration] = [
        .initialSchema, .traceContext, .actors, .inlinedEpochConversion, .leanOutbox, .cancellation, .signals, .completionOrder,
        .childSagas,
    ]
}
