import BatonCore
import Foundation
import PostgresNIO

extension SagaStore {
    /// The statuses of sagas still in flight, as SQL. Written out literally in queries (never bound)
    /// so that the planner can match them to the `sagas_active` partial index.
    static let activeStatusesSQL = "status IN ('PENDING', 'PROCESSING', 'COMPENSATING', 'SUSPENDED')"

    /// One page of sagas, newest first.
    /// - Parameter now: The time "running longer than" counts from.
    public func listSagas(_ list: SagaListQuery, now: Date) async throws -> SagaPage {
        let limit = Self.pageSize(list)
        var sagas: [SagaSummary] = []
        var lastKey: SagaPageCursor?
        var more = false
        for try await row in try await query(Self.listQuery(list, now: now)) {
            guard sagas.count < limit else {
                more = true
                break
            }
            let column = RowReader(row)
            let id = try column("id", as: UUID.self)
            sagas.append(
                SagaSummary(
                    id: id.sagaID,
                    workflow: try column("workflow"),
                    workflowVersion: try column("workflow_version"),
                    status: try column.enumeration("status", as: SagaStatus.self),
                    currentStep: try column("current_step"),
                    correlationID: try column("correlation_id"),
                    attempts: try column("attempts"),
                    retries: try column("retries"),
                    lastError: try column("last_error"),
                    suspensionReason: try column("suspension_reason"),
                    cancellation: try column.cancellation(),
                    awaitingReplySince: try column("awaiting_reply_since"),
                    createdAt: try column("created_at"),
                    updatedAt: try column("updated_at"),
                    finishedAt: try column("finished_at")
                ))
            lastKey = SagaPageCursor(createdAtMicroseconds: try column("created_us"), id: id)
        }
        return SagaPage(sagas: sagas, next: more ? lastKey : nil)
    }

    static func pageSize(_ list: SagaListQuery) -> Int { min(max(list.limit, 1), SagaListQuery.maximumLimit) }

    /// The list query: one row more than the page size, so that a next page is known to exist.
    static func listQuery(_ list: SagaListQuery, now: Date) -> PostgresQuery {
        var builder = QueryBuilder()
        var conditions: [String] = []
        if !list.statuses.isEmpty {
            conditions.append("status = ANY(\(builder.bind(list.statuses.map(\.rawValue).sorted()))::text[])")
        }
        if let workflow = list.workflow { conditions.append("workflow = \(builder.bind(workflow))") }
        if let from = list.createdFrom { conditions.append("created_at >= \(builder.bind(from))") }
        if let before = list.createdBefore { conditions.append("created_at < \(builder.bind(before))") }
        if !list.stuck.isEmpty {
            let stuck = list.stuck.map { condition in
                switch condition {
                case .runningLongerThan(let duration): "created_at < \(builder.bind(now - duration))"
                case .retriedMoreThan(let retries): "retries > \(builder.bind(retries))"
                case .awaitingReplySince(let since): "awaiting_reply_since <= \(builder.bind(since))"
                case .compensating: "status = 'COMPENSATING'"
                case .suspended: "status = 'SUSPENDED'"
                }
            }
            conditions.append("\(Self.activeStatusesSQL) AND (\(stuck.joined(separator: " OR ")))")
        }
        if let search = list.search {
            // The input is matched only on the rows the other conditions leave (no index reads it).
            var matches = [
                "correlation_id = \(builder.bind(search))", "idempotency_key = \(builder.bind(search))",
                "jsonb_path_exists(input, '$.* ? (@ == $q)', jsonb_build_object('q', \(builder.bind(search))::text))",
            ]
            if let id = UUID(sagaID: search) { matches.insert("id = \(builder.bind(id))", at: 0) }
            conditions.append("(\(matches.joined(separator: " OR ")))")
        }
        if let after = list.after {
            conditions.append(
                "(created_at, id) < (baton.from_epoch_us(\(builder.bind(after.createdAtMicroseconds))), \(builder.bind(after.id)))")
        }
        let sql = """
            SELECT id, workflow, workflow_version, status, current_step, correlation_id, attempts, retries, last_error,
                suspension_reason, cancel_reason, cancelled_by, cancelled_at, awaiting_reply_since, created_at, updated_at,
                finished_at, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us
            FROM baton.sagas
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: "\n  AND "))
            ORDER BY created_at DESC, id DESC
            LIMIT \(builder.bind(pageSize(list) + 1))
            """
        return builder.query(sql)
    }

    /// A saga's history in order, from the entry after `afterSeq`.
    /// - Returns: Up to `limit` entries; empty for an unknown saga.
    public func history(sagaID: String, afterSeq: Int = 0, limit: Int = 1000) async throws -> [StoredHistoryEntry] {
        guard let id = UUID(sagaID: sagaID) else { return [] }
        let rows = try await query(
            """
            SELECT seq, kind, step, direction, attempt, status_before, status_after, detail, at, actor
            FROM baton.saga_history WHERE saga_id = \(id) AND seq > \(afterSeq)
            ORDER BY seq LIMIT \(max(limit, 1))
            """)
        var entries: [StoredHistoryEntry] = []
        for try await row in rows {
            let column = RowReader(row)
            entries.append(
                StoredHistoryEntry(
                    seq: try column("seq"),
                    entry: HistoryEntry(
                        kind: try column.enumeration("kind", as: HistoryEntry.Kind.self),
                        step: try column("step"),
                        direction: try column.optionalEnumeration("direction", as: StepDirection.self),
                        attempt: try column("attempt"),
                        statusBefore: try column.enumeration("status_before", as: SagaStatus.self),
                        statusAfter: try column.enumeration("status_after", as: SagaStatus.self),
                        detail: try column("detail"),
                        at: try column("at"),
                        actor: try column("actor")
                    )
                ))
        }
        return entries
    }

    /// The id of the saga an idempotency key created, if one did.
    public func sagaID(idempotencyKey key: String) async throws -> String? {
        let rows = try await query("SELECT id FROM baton.sagas WHERE idempotency_key = \(key)")
        for try await id in rows.decode(UUID.self) { return id.sagaID }
        return nil
    }

    /// The child sagas a saga's steps started, oldest first.
    public func children(of sagaID: String) async throws -> [ChildSagaSummary] {
        guard let id = UUID(sagaID: sagaID) else { return [] }
        let rows = try await query(
            """
            SELECT id, parent_step, workflow, workflow_version, status FROM baton.sagas
            WHERE parent_saga_id = \(id) ORDER BY id
            """)
        var children: [ChildSagaSummary] = []
        for try await row in rows {
            let column = RowReader(row)
            children.append(
                ChildSagaSummary(
                    id: try column("id", as: UUID.self).sagaID, step: try column("parent_step"), workflow: try column("workflow"),
                    workflowVersion: try column("workflow_version"), status: try column.enumeration("status", as: SagaStatus.self)))
        }
        return children
    }

    static let activeCountsQuery: PostgresQuery =
        "SELECT status, count(*) FROM baton.sagas WHERE \(unescaped: activeStatusesSQL) GROUP BY status"

    /// How many sagas are in flight, by status (statuses with none are left out).
    public func activeSagaCounts() async throws -> [SagaStatus: Int] {
        let rows = try await query(Self.activeCountsQuery)
        var counts: [SagaStatus: Int] = [:]
        for try await (status, count) in rows.decode((String, Int).self) {
            if let status = SagaStatus(rawValue: status) { counts[status] = count }
        }
        return counts
    }
}
