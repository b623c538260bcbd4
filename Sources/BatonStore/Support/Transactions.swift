import Logging
import PostgresNIO

/// The connection a transaction ran on was closed (by the server, the network, or a failover)
/// before the transaction finished: nothing of it was committed, unless the loss came during
/// `COMMIT` itself, in which case the outcome is unknown to the client.
public struct DatabaseConnectionLost: Error, Sendable, CustomStringConvertible {
    public var description: String { "the database connection was closed in the middle of a transaction" }
}

extension PostgresConnection {
    /// Runs one statement of a transaction.
    ///
    /// PostgresNIO 1.33.2 never completes a query written to a connection the server has already
    /// closed: the write fails before it reaches the handler that would fail the query, so the
    /// caller waits forever. A transaction that held its connection while doing other work (a relay
    /// publishing a batch) meets exactly that when PostgreSQL terminates its backend. Checking first
    /// turns it into an error; a close in the microseconds between the check and the write is not
    /// covered.
    @discardableResult
    public func run(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        guard !isClosed else { throw DatabaseConnectionLost() }
        return try await self.query(query, logger: logger)
    }
}

extension PostgresClient {
    /// Runs one query outside a transaction, on a pooled connection it checks first, and reads
    /// every row before the connection goes back to the pool: every one-off query goes through
    /// this, never `PostgresClient.query`.
    ///
    /// PostgresNIO 1.33.2 never completes a query written to a connection the server has closed
    /// (``PostgresConnection/run(_:logger:)``), and the pool can hand out such a connection in the
    /// moment before it notices the close. A service waiting on that query could not even be
    /// cancelled: SIGTERM during a PostgreSQL outage hung (seen in the tests under load).
    @discardableResult
    public func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        try await withConnection { connection in
            CollectedRows(rows: try await connection.run(query, logger: logger).collect())
        }
    }

    /// Runs `body` in a transaction on one pooled connection: `COMMIT` when it returns, `ROLLBACK`
    /// when it throws. Used instead of PostgresNIO's `withTransaction`, whose `COMMIT`/`ROLLBACK`
    /// would hang on a connection the server closed meanwhile (see ``PostgresConnection/run(_:logger:)``).
    /// - Parameter snapshot: Read everything from one snapshot, and write nothing (`REPEATABLE READ
    ///   READ ONLY`): for a read of several statements that must agree with one another.
    public func withStoreTransaction<Result: Sendable>(
        logger: Logger,
        snapshot: Bool = false,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in
            _ = try await connection.run(snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", logger: logger)
            let result: Result
            do {
                result = try await body(connection)
            } catch {
                if !connection.isClosed {
                    do {
                        _ = try await connection.run("ROLLBACK", logger: logger)
                    } catch {
                        // A connection that cannot roll back must not go back to the pool mid-transaction.
                        try? await connection.close()
                    }
                }
                throw error
            }
            _ = try await connection.run("COMMIT", logger: logger)
            return result
        }
    }
}

/// The rows of a query, read in full (``PostgresClient/checkedQuery(_:logger:)``), as an
/// `AsyncSequence` so that they decode as PostgresNIO's row sequences do.
public struct CollectedRows: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    let rows: [PostgresRow]

    public struct AsyncIterator: AsyncIteratorProtocol {
        var rows: IndexingIterator<[PostgresRow]>
        public mutating func next() async throws -> PostgresRow? { rows.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rows: rows.makeIterator()) }
}
