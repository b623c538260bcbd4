import BatonCore
import Foundation
import PostgresNIO

/// How many sagas in flight are stuck in each way (the console's overview).
public struct StuckCounts: Sendable, Hashable {
    public var suspended: Int
    public var compensating: Int
    /// Created longer ago than the overview's "running" limit.
    public var runningLong: Int
    /// Waiting for a reply for longer than the overview's "awaiting" limit.
    public var awaitingLong: Int
    /// Retried more than the overview's "retries" limit.
    public var retriedOften: Int
}

/// A saga's status and revision: what a change feed compares between two looks.
public struct SagaRevision: Sendable, Hashable {
    public var id: String
    public var status: SagaStatus
    public var revision: Int64
}

extension SagaStore {
    /// Counts of the sagas in flight that are stuck, by kind; each reads the small `sagas_active`
    /// index, however many finished sagas the table holds.
    public func stuckCounts(runningBefore: Date, awaitingSince: Date, retriesAbove: Int) async throws -> StuckCounts {
        let rows = try await query(
            """
            SELECT count(*) FILTER (WHERE status = 'SUSPENDED'), count(*) FILTER (WHERE status = 'COMPENSATING'),
                count(*) FILTER (WHERE created_at < \(runningBefore)),
                count(*) FILTER (WHERE awaiting_reply_since <= \(awaitingSince)),
                count(*) FILTER (WHERE retries > \(retriesAbove))
            FROM baton.sagas WHERE \(unescaped: Self.activeStatusesSQL)
            """)
        for try await (suspended, compensating, running, awaiting, retried) in rows.decode((Int, Int, Int, Int, Int).self) {
            return StuckCounts(
                suspended: suspended, compensating: compensating, runningLong: running, awaitingLong: awaiting, retriedOften: retried)
        }
        return StuckCounts(suspended: 0, compensating: 0, runningLong: 0, awaitingLong: 0, retriedOften: 0)
    }

    /// How many sagas finished since `since`, by final status. Only sagas created in the day
    /// before `since` are counted, so that the query reads a bounded range of the status index.
    public func finishedCounts(since: Date) async throws -> [SagaStatus: Int] {
        let rows = try await query(
            """
            SELECT status, count(*) FROM baton.sagas
            WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND created_at >= \(since - 24 * 3600) AND finished_at >= \(since)
            GROUP BY status
            """)
        var counts: [SagaStatus: Int] = [:]
        for try await (status, count) in rows.decode((String, Int).self) {
            if let status = SagaStatus(rawValue: status) { counts[status] = count }
        }
        return counts
    }

    /// The revision of every saga in flight (at most `limit`, oldest first), and of the sagas named
    /// in `ids` whatever their status: a change feed compares two such looks.
    public func revisions(ofActiveUpTo limit: Int, and ids: Set<String>) async throws -> [SagaRevision] {
        let uuids = ids.compactMap(UUID.init(sagaID:))
        let rows = try await query(
            """
            (SELECT id, status, revision FROM baton.sagas WHERE \(unescaped: Self.activeStatusesSQL)
                ORDER BY created_at, id LIMIT \(limit))
            UNION
            SELECT id, status, revision FROM baton.sagas WHERE id = ANY(\(uuids))
            """)
        var revisions: [SagaRevision] = []
        for try await (id, status, revision) in rows.decode((UUID, String, Int64).self) {
            guard let status = SagaStatus(rawValue: status) else { continue }
            revisions.append(SagaRevision(id: id.sagaID, status: status, revision: revision))
        }
        return revisions
    }
}
