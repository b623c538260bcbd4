import BatonCore
import Foundation
import PostgresNIO

/// A command waiting in the outbox to be published.
public struct OutboxMessage: Sendable, Hashable {
    public var id: Int64
    public var command: StepCommand
    public var createdAt: Date
    /// Failed publish attempts so far.
    public var publishAttempts: Int
}

/// What a relay did with a claimed batch.
public struct OutboxPublishResult: Sendable, Hashable {
    /// Published and acknowledged by the broker: marked published.
    public var published: [Int64]
    /// Not published, with the reason: left unpublished, with the attempt counted.
    public var failed: [Int64: String]

    public init(published: [Int64], failed: [Int64: String] = [:]) {
        self.published = published
        self.failed = failed
    }
}

extension SagaStore {
    /// Claims up to `limit` unpublished commands, oldest first, hands them to `publish`, and records
    /// what it reports, all in one transaction.
    ///
    /// The rows are claimed with `FOR UPDATE SKIP LOCKED`: while one relay holds them, others claim
    /// the next rows, so two relays never publish one row at the same time. If the relay dies (its
    /// connection drops, the transaction rolls back, `publish` throws), the rows are unclaimed again
    /// and another relay publishes them; JetStream drops the duplicate through the command's
    /// `Nats-Msg-Id` should the first publish have reached it. Rows neither published nor failed
    /// stay unpublished too.
    ///
    /// - Parameter queuedBefore: Claim only rows queued before this (those their writer had its
    ///   chance to publish, ``SagaRecord/queued``); `nil` claims any.
    /// - Returns: How many rows were claimed (0 when the outbox was empty).
    @discardableResult
    public func relayOutbox(
        limit: Int,
        now: Date,
        queuedBefore: Date? = nil,
        _ publish: ([OutboxMessage]) async throws -> OutboxPublishResult
    ) async throws -> Int {
        try await transaction { connection in
            let rows = try await connection.run(Self.outboxClaimQuery(limit: limit, queuedBefore: queuedBefore), logger: logger)
            var batch: [OutboxMessage] = []
            for try await row in rows {
                let column = RowReader(row)
                guard let command = try column.json("command", as: StepCommand.self) else {
                    throw SagaStoreError.corruptRow("outbox row without a command")
                }
                batch.append(
                    OutboxMessage(
                        id: try column("id"), command: command, createdAt: try column("created_at"),
                        publishAttempts: try column("publish_attempts")))
            }
            guard !batch.isEmpty else { return 0 }
            let result = try await publish(batch)
            if !result.published.isEmpty {
                try await connection.run(
                    "UPDATE baton.outbox SET published_at = \(now) WHERE id = ANY(\(result.published))", logger: logger)
            }
            if !result.failed.isEmpty {
                let ids = Array(result.failed.keys)
                let reasons = ids.map { result.failed[$0] ?? "" }
                try await connection.run(
                    """
                    UPDATE baton.outbox o SET publish_attempts = o.publish_attempts + 1, last_error = f.reason
                    FROM unnest(\(ids)::bigint[], \(reasons)::text[]) AS f(id, reason)
                    WHERE o.id = f.id
                    """,
                    logger: logger
                )
            }
            return batch.count
        }
    }

    /// The oldest unpublished rows that no other relay holds, locked for this transaction.
    static func outboxClaimQuery(limit: Int, queuedBefore: Date? = nil) -> PostgresQuery {
        // Without a cutoff, one far in the future: one statement, one plan.
        let cutoff = queuedBefore ?? Date.distantFuture
        return """
            SELECT id, command, created_at, publish_attempts FROM baton.outbox
            WHERE published_at IS NULL AND created_at < \(cutoff)
            ORDER BY id
            LIMIT \(max(limit, 1))
            FOR UPDATE SKIP LOCKED
            """
    }

    /// Marks commands published outside a relay's claim (their writer published them,
    /// ``SagaRecord/queued``).
    ///
    /// A row a relay holds is waited for, and one it has marked meanwhile is left as it is.
    public func markPublished(_ ids: [Int64], now: Date) async throws {
        guard !ids.isEmpty else { return }
        _ = try await query("UPDATE baton.outbox SET published_at = \(now) WHERE id = ANY(\(ids)) AND published_at IS NULL")
    }

    /// How many commands wait to be published, and when the oldest was queued.
    public func outboxBacklog() async throws -> (count: Int, oldest: Date?) {
        let rows = try await query("SELECT count(*), min(created_at) FROM baton.outbox WHERE published_at IS NULL")
        for try await (count, oldest) in rows.decode((Int, Date?).self) { return (count, oldest) }
        return (0, nil)
    }

    /// Deletes the published rows, published before `cutoff`, among the oldest `limit` outbox rows.
    /// - Returns: How many were deleted (call again while it returns `limit`).
    @discardableResult
    public func pruneOutbox(publishedBefore cutoff: Date, limit: Int = 10_000) async throws -> Int {
        // Published rows are (nearly) in id order, so the oldest `limit` rows by primary key are
        // the candidates: no index on published_at, and a call never walks more than `limit` rows
        // (walking until `limit` matches would read the whole table when nothing is old enough).
        let rows = try await query(
            """
            WITH gone AS (
                DELETE FROM baton.outbox WHERE id IN (
                    SELECT id FROM (SELECT id, published_at FROM baton.outbox ORDER BY id LIMIT \(limit)) oldest
                    WHERE published_at < \(cutoff))
                RETURNING 1)
            SELECT count(*) FROM gone
            """)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    /// Deletes up to `limit` inbox records received before `cutoff`: replies redelivered after
    /// that are caught by the state machine's attempt check instead (recorded as duplicates).
    /// - Returns: How many were deleted (call again while it returns `limit`).
    @discardableResult
    public func pruneInbox(receivedBefore cutoff: Date, limit: Int = 10_000) async throws -> Int {
        // The BRIN index on received_at finds the old block ranges; ctid deletes exactly the rows
        // found, so one call never holds more than `limit` row locks.
        let rows = try await query(
            """
            WITH gone AS (
                DELETE FROM baton.inbox WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM baton.inbox WHERE received_at < \(cutoff) LIMIT \(limit)))
                RETURNING 1)
            SELECT count(*) FROM gone
            """)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
