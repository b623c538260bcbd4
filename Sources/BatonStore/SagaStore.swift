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
    /// Told about the commands each committed write queued; when set, writes send no `outbox`
    /// wake-up through `NOTIFY` (see ``announcingQueuedCommands(to:)``).
    let outboxListener: (any OutboxListener)?

    /// - Parameter client: A running `PostgresClient` (run it in the service group).
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        self.outboxListener = nil
    }

    private init(client: PostgresClient, logger: Logger, outboxListener: (any OutboxListener)?) {
        self.client = client
        self.logger = logger
        self.outboxListener = outboxListener
    }

    /// This store, telling `listener` in-process about the commands each of its writes queued, as
    /// soon as the write commits, instead of waking outbox relays through `NOTIFY`.
    ///
    /// The listener publishes them straight away (``OutboxListener``); relays then only sweep up
    /// what it missed, so they should claim rows older than a grace period
    /// (``relayOutbox(limit:now:queuedBefore:_:)``).
    public func announcingQueuedCommands(to listener: some OutboxListener) -> SagaStore {
        SagaStore(client: client, logger: logger, outboxListener: listener)
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
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await client.withStoreTransaction(logger: logger) { connection in try await body(connection) }
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

    /// Runs one query outside a transaction, translating its errors.
    func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        do {
            return try await client.query(query, logger: logger)
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
