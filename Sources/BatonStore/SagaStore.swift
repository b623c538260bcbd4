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

    /// Whether the database answers a trivial query (readiness).
    public func isReachable() async -> Bool {
        (try? await query("SELECT 1")) != nil
    }

    /// Runs one query outside a transaction, on a pooled connection it checks first, and reads
    /// every row before the connection goes back to the pool; translates its errors.
    ///
    /// Not `PostgresClient.query`: PostgresNIO 1.33.2 never completes a query written to a
    /// connection the server has closed (``PostgresConnection/run(_:logger:)``), and the pool can
    /// hand out such a connection in the moment before it notices the close. A service waiting on
    /// that query could not even be cancelled: SIGTERM during a PostgreSQL outage hung (seen in
    /// the tests under load).
    func query(_ query: PostgresQuery) async throws -> StoreRows {
        do {
            return try await client.withConnection { connection in
                StoreRows(rows: try await connection.run(query, logger: logger).collect())
            }
        } catch {
            throw SagaStoreError.translating(error)
        }
    }
}

/// The rows of a query, read in full (``SagaStore/query(_:)``), as an `AsyncSequence` so that they
/// decode as PostgresNIO's row sequences do.
struct StoreRows: AsyncSequence, Sendable {
    typealias Element = PostgresRow
    let rows: [PostgresRow]

    struct AsyncIterator: AsyncIteratorProtocol {
        var rows: IndexingIterator<[PostgresRow]>
        mutating func next() async throws -> PostgresRow? { rows.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rows: rows.makeIterator()) }
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
