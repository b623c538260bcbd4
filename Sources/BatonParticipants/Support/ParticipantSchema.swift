import BatonStore
import BatonWorker
import Logging
import PostgresNIO

/// A participant's own schema in its database: its tables, then its barrier's table.
enum ParticipantSchema {
    /// Runs `statements` (each `IF NOT EXISTS` or `OR REPLACE`) in one transaction behind an
    /// advisory lock, so that several processes of the participant can start at once.
    static func prepare(
        _ schema: String,
        client: PostgresClient,
        barrier: IdempotencyBarrier,
        logger: Logger,
        statements: [PostgresQuery]
    ) async throws {
        try await client.withStoreTransaction(logger: logger) { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(hashtextextended(\(schema + " schema"), 0))", logger: logger)
            try await connection.run("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: logger)
            for statement in statements { try await connection.run(statement, logger: logger) }
        }
        try await barrier.prepare()
    }
}
