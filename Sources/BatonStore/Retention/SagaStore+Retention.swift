import Foundation
import PostgresNIO

/// Which finished sagas one retention batch may remove: those of one workflow, or of every
/// workflow but the ones with a policy of their own.
public enum RetentionScope: Sendable, Hashable {
    case workflow(String)
    case allExcept([String])
}

/// A finished saga as the archive keeps it: one JSON document with its row, its steps and its
/// history, as stored.
public struct ArchivedSaga: Sendable {
    public var id: String
    public var workflow: String
    /// `{"saga": {…}, "steps": […], "history": […], "archived_at": …}`, one line of JSON.
    public var document: String
}

extension SagaStore {
    /// Removes up to `limit` finished sagas (COMPLETED or FAILED) of `scope` that finished before
    /// `cutoff`, with their steps and history (the foreign keys cascade). A saga with a child
    /// still in flight stays: the child reports to it when it finishes.
    ///
    /// Rows another transaction holds are skipped (`SKIP LOCKED`), so any number of replicas may
    /// sweep at once and a sweep never waits on the hot path.
    /// - Parameter archive: Given the batch before it is deleted, inside the transaction: when it
    ///   throws, nothing is deleted. A crash after it returned and before the commit archives the
    ///   batch again on the next sweep, so an archive holds each saga at least once.
    /// - Returns: How many sagas were removed, by workflow (call again while the total is `limit`).
    public func removeFinishedSagas(
        finishedBefore cutoff: Date,
        scope: RetentionScope,
        limit: Int,
        archive: ((_ batch: [ArchivedSaga]) async throws -> Void)? = nil
    ) async throws -> [String: Int] {
        guard let archive else {
            let rows = try await query(Self.retentionQuery(finishedBefore: cutoff, scope: scope, limit: limit))
            var removed: [String: Int] = [:]
            for try await (workflow, count) in rows.decode((String, Int).self) { removed[workflow] = count }
            return removed
        }
        var builder = QueryBuilder()
        let candidates = Self.retentionCandidates(finishedBefore: cutoff, scope: scope, limit: limit, &builder)
        let select = builder.query(
            """
            SELECT s.id, s.workflow, jsonb_build_object(
                'saga', to_jsonb(s),
                'steps', coalesce((SELECT jsonb_agg(to_jsonb(t) - 'saga_id' ORDER BY t.position)
                    FROM baton.saga_steps t WHERE t.saga_id = s.id), '[]'),
                'history', coalesce((SELECT jsonb_agg(to_jsonb(h) - 'saga_id' ORDER BY h.seq)
                    FROM baton.saga_history h WHERE h.saga_id = s.id), '[]'),
                'archived_at', now())::text
            \(candidates) FOR UPDATE OF s SKIP LOCKED
            """)
        return try await transaction { connection in
            var batch: [ArchivedSaga] = []
            var ids: [UUID] = []
            for try await (id, workflow, document) in try await connection.run(select, logger: logger).decode((UUID, String, String).self) {
                ids.append(id)
                batch.append(ArchivedSaga(id: id.sagaID, workflow: workflow, document: document))
            }
            guard !batch.isEmpty else { return [:] }
            try await archive(batch)
            _ = try await connection.run("DELETE FROM baton.sagas WHERE id = ANY(\(ids))", logger: logger)
            return batch.reduce(into: [:]) { removed, saga in removed[saga.workflow, default: 0] += 1 }
        }
    }

    /// One batch's delete, without an archive: the rows, their removal and the counts by workflow
    /// in one statement. (`= ANY(ARRAY(…))` deletes by primary key; `IN (SELECT …)` may be planned
    /// as a hash join over the whole table.)
    static func retentionQuery(finishedBefore cutoff: Date, scope: RetentionScope, limit: Int) -> PostgresQuery {
        var builder = QueryBuilder()
        let candidates = retentionCandidates(finishedBefore: cutoff, scope: scope, limit: limit, &builder)
        return builder.query(
            """
            WITH doomed AS (SELECT s.id \(candidates) FOR UPDATE OF s SKIP LOCKED),
            gone AS (DELETE FROM baton.sagas WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING workflow)
            SELECT workflow, count(*) FROM gone GROUP BY workflow
            """)
    }

    /// `FROM … WHERE … LIMIT …` of one batch's sagas (alias `s`).
    private static func retentionCandidates(
        finishedBefore cutoff: Date, scope: RetentionScope, limit: Int, _ builder: inout QueryBuilder
    ) -> String {
        let cutoffBind = builder.bind(cutoff)
        // created_at <= finished_at, so the condition on created_at (which the status and
        // workflow indexes cover) finds the candidates without an index on finished_at, and
        // costs the hot path nothing. OFFSET 0 keeps the check for children in flight a probe of
        // sagas_parent per candidate: as an anti-join it may sort every candidate before the LIMIT.
        var conditions = [
            "s.status IN ('COMPLETED', 'FAILED')", "s.created_at < \(cutoffBind)", "s.finished_at < \(cutoffBind)",
            "NOT EXISTS (SELECT 1 FROM baton.sagas c WHERE c.parent_saga_id = s.id AND c.finished_at IS NULL OFFSET 0)",
        ]
        switch scope {
        case .workflow(let name): conditions.append("s.workflow = \(builder.bind(name))")
        case .allExcept(let names) where !names.isEmpty: conditions.append("s.workflow <> ALL(\(builder.bind(names)))")
        case .allExcept: break
        }
        return "FROM baton.sagas s WHERE \(conditions.joined(separator: " AND ")) LIMIT \(builder.bind(limit))"
    }
}
