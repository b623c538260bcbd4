import BatonCore
import Foundation
import Logging
import PostgresNIO

/// Baton's durable state in PostgreSQL: workflow definitions, sagas with their steps and history,
/// the command outbox, the durable timers and the reply inbox.
///
/// Every method is safe to call from any number of tasks and any number of orchestrator replicas
/// sharing one database: a saga changes only under its row lock, and outbox rows and timers are
/// claimed with `FOR UPDATE SKIP LOCKED`, so no leader is needed. Time is always passed in, so that
/// tests control it and every replica's writes use one clock per call.
public struct SagaStore: Sendable {
    public let client: PostgresClient
    let logger: Logger
    /// Whether a write that queues commands wakes outbox relays through `NOTIFY`. A process that
    /// publishes the commands it queued itself, right after the commit (BatonEngine's
    /// `CommandDispatcher`), turns it off: its relays only sweep up what it missed.
    let wakesOutboxRelays: Bool

    /// - Parameters:
    ///   - client: A running `PostgresClient` (run it in the service group).
    ///   - wakesOutboxRelays: See ``wakesOutboxRelays``.
    public init(client: PostgresClient, logger: Logger, wakesOutboxRelays: Bool = true) {
        self.client = client
        self.logger = logger
        self.wakesOutboxRelays = wakesOutboxRelays
    }

    /// Applies pending schema migrations (see ``SchemaMigrator``).
    @discardableResult
    public func migrate() async throws -> MigrationReport {
        let report = try await SchemaMigrator().migrate(client, logger: logger)
        if !report.newerVersionsInDatabase.isEmpty {
            logger.warning(
                "the database schema is newer than this build; running on the versions it knows",
                metadata: ["schema.newer_versions": "\(report.newerVersionsInDatabase)"])
        }
        return report
    }

    /// Runs `body` in a transaction, translating what it throws (see ``SagaStoreError``).
    func transaction<Result: Sendable>(
        snapshot: Bool = false,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await client.withStoreTransaction(logger: logger, snapshot: snapshot) { connection in
                try await body(connection)
            }
        } catch {
            throw SagaStoreError.translating(error)
        }
    }

    /// Runs `body` on a connection outside a transaction (each statement commits by itself),
    /// translating its errors.
    func withConnection<Result: Sendable>(
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch {
            throw SagaStoreError.translating(error)
        }
    }

    /// Whether the database answers a trivial query (readiness).
    public func isReachable() async -> Bool {
        (try? await query("SELECT 1")) != nil
    }

    /// Runs one query outside a transaction (``PostgresClient/checkedQuery(_:logger:)``: never
    /// `PostgresClient.query`, which can hang on a connection the server closed); translates its
    /// errors.
    func query(_ query: PostgresQuery) async throws -> CollectedRows {
        do {
            return try await client.checkedQuery(query, logger: logger)
        } catch {
            throw SagaStoreError.translating(error)
        }
    }
}

extension UUID {
    /// The UUID of a saga id, or `nil` when the text is not one (such a saga cannot exist).
    init?(sagaID: String) {
        guard let uuid = UUID(uuidString: sagaID) else { return nil }
        self = uuid
    }

    /// The saga id form: lowercase, as ``SagaID`` writes it and PostgreSQL prints it.
    var sagaID: String { uuidString.lowercased() }
}
