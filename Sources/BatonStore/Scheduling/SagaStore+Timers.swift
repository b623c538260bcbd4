import BatonCore
import Foundation
import PostgresNIO

/// A due timer a scheduler has claimed. Only the holder of ``claimToken`` can fire it, and only
/// while the timer is the one that was claimed.
public struct ClaimedTimer: Sendable, Hashable {
    public var sagaID: String
    public var timer: SagaTimer
    public var claimToken: UUID
    /// When the claim lapses and another scheduler may claim the timer.
    public var leaseExpires: Date
}

/// The result of ``SagaStore/fireTimer(_:now:_:)``.
public enum TimerFiring: Sendable {
    /// The timer fired: the saga as it now stands and the transition the timer caused.
    case fired(SagaRecord, SagaTransition)
    /// The timer was cancelled, replaced (a new attempt rescheduled its slot) or claimed by another
    /// scheduler after the lease lapsed since it was claimed: nothing was done.
    case superseded
}

extension SagaStore {
    /// Claims up to `limit` timers due at `now`, soonest first, for `lease`.
    ///
    /// Claimed with `FOR UPDATE SKIP LOCKED`, so concurrent schedulers each get different timers.
    /// A claim moves the timer's `claimable_at` to the end of the lease: if the scheduler dies before
    /// firing it, the timer becomes claimable again then.
    public func claimDueTimers(now: Date, limit: Int, lease: SagaDuration) async throws -> [ClaimedTimer] {
        let token = UUID()
        let leaseExpires = now + lease
        let rows = try await query(Self.timerClaimQuery(now: now, limit: limit, leaseExpires: leaseExpires, token: token))
        var claimed: [ClaimedTimer] = []
        for try await row in rows {
            let column = RowReader(row)
            claimed.append(
                ClaimedTimer(
                    sagaID: try column("saga_id", as: UUID.self).sagaID,
                    timer: SagaTimer(
                        kind: try column.enumeration("kind", as: SagaTimer.Kind.self),
                        step: try column("step"),
                        direction: try column.optionalEnumeration("direction", as: StepDirection.self),
                        attempt: try column("attempt"),
                        due: try column("due_at")
                    ),
                    claimToken: token,
                    leaseExpires: leaseExpires
                ))
        }
        return claimed.sorted { $0.timer.due < $1.timer.due }
    }

    /// Moves up to `limit` due timers that no other scheduler is claiming to the end of a lease.
    static func timerClaimQuery(now: Date, limit: Int, leaseExpires: Date, token: UUID) -> PostgresQuery {
        """
        UPDATE baton.timers t SET claimable_at = \(leaseExpires), claim_token = \(token), claims = t.claims + 1
        FROM (
            SELECT saga_id, timer_key FROM baton.timers
            WHERE claimable_at <= \(now)
            ORDER BY claimable_at
            LIMIT \(max(limit, 1))
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE t.saga_id = due.saga_id AND t.timer_key = due.timer_key
        RETURNING t.saga_id, t.kind, t.step, t.direction, t.attempt, t.due_at
        """
    }

    /// Fires a claimed timer: under the saga's row lock, deletes the timer (only if it is still the
    /// one claimed) and applies what `decide` returns, in one transaction.
    ///
    /// This is the store's fence: a timer that was cancelled or rescheduled for a newer attempt after
    /// it was claimed fires as a no-op (``TimerFiring/superseded``) without calling `decide`. The
    /// state machine fences again by attempt.
    @discardableResult
    public func fireTimer(
        _ claimed: ClaimedTimer,
        now: Date,
        _ decide: (SagaRecord, LockedReads) async throws -> SagaChange
    ) async throws -> TimerFiring {
        guard let sagaID = UUID(sagaID: claimed.sagaID) else { throw SagaStoreError.sagaNotFound(id: claimed.sagaID) }
        return try await transaction { connection -> TimerFiring in
            // The saga first, then its timer: the order every transition takes its locks in.
            guard let record = try await loadSaga(sagaID, on: connection, lock: true) else { return .superseded }
            let deleted = try await connection.run(
                """
                DELETE FROM baton.timers
                WHERE saga_id = \(sagaID) AND timer_key = \(claimed.timer.key.storageKey) AND claim_token = \(claimed.claimToken)
                RETURNING 1
                """,
                logger: logger
            )
            var current = false
            for try await _ in deleted { current = true }
            guard current else { return .superseded }
            let change = try await decide(record, LockedReads(store: self, connection: connection))
            switch try await apply(change, to: record, on: connection, now: now) {
            case .updated(let updated, let transition): return .fired(updated, transition)
            case .alreadyReceived: return .superseded
            }
        }
    }

    /// Fires claimed timers of different sagas in one transaction: every saga's row lock in one
    /// statement (in id order, as ``updateSagas(_:now:_:)`` takes them), their steps in another,
    /// `decide` for each, the current timers deleted in one statement, the sagas written in one more,
    /// and one commit. Each timer is fenced as ``fireTimer(_:now:_:)`` fences it: one cancelled, replaced
    /// or claimed again since is ``TimerFiring/superseded``.
    ///
    /// A timer whose `decide` throws keeps its row (it fires again when its lease lapses) and its
    /// error is returned in its place; the others fire. A write that fails aborts the whole batch,
    /// and this throws: fire them one at a time then, so the bad one fails alone.
    /// - Parameters:
    ///   - timers: At most one per saga.
    ///   - decide: Given a timer's position in `timers` and its saga as stored (locked), the change
    ///     (it may read more through ``LockedReads``).
    /// - Returns: One result per timer, in order; a fired record lists the commands its write
    ///   queued (``SagaRecord/queued``).
    public func fireTimers(
        _ timers: [ClaimedTimer],
        now: Date,
        _ decide: (Int, SagaRecord, LockedReads) async throws -> SagaChange
    ) async throws -> [Result<TimerFiring, any Error>] {
        let ids = Self.batchIDs(timers.map(\.sagaID))
        return try await transaction { connection -> [Result<TimerFiring, any Error>] in
            // The sagas first, then their timers: the order every transition takes its locks in.
            let records = try await loadSagas(ids.compactMap { $0 }, on: connection, lock: true)
            let reads = LockedReads(store: self, connection: connection)
            var results = [Result<TimerFiring, any Error>](repeating: .success(.superseded), count: timers.count)
            // Decided before the delete: a timer whose decision fails keeps its row.
            var decided: [(index: Int, id: UUID, record: SagaRecord, change: SagaChange)] = []
            for (index, id) in ids.enumerated() {
                guard let id, let record = records[id] else { continue }
                do {
                    decided.append((index, id, record, try await decide(index, record, reads)))
                } catch {
                    results[index] = .failure(error)
                }
            }
            let deleted = try await connection.run(
                """
                DELETE FROM baton.timers t
                USING unnest(\(decided.map(\.id)), \(decided.map { timers[$0.index].timer.key.storageKey }),
                    \(decided.map { timers[$0.index].claimToken })) AS f(saga_id, timer_key, claim_token)
                WHERE t.saga_id = f.saga_id AND t.timer_key = f.timer_key AND t.claim_token = f.claim_token
                RETURNING t.saga_id
                """,
                logger: logger
            )
            var current = Set<UUID>()
            for try await id in deleted.decode(UUID.self) { current.insert(id) }
            let firing = decided.filter { current.contains($0.id) }
            let written = try await apply(
                firing.map { SagaWrite(change: $0.change, record: $0.record) }, on: connection, now: now)
            for (decision, result) in zip(firing, written) {
                if case .updated(let updated, let transition) = result { results[decision.index] = .success(.fired(updated, transition)) }
            }
            return results
        }
    }

    /// When the next timer becomes claimable (its due time, or the end of a lapsed claim's lease), or
    /// `nil` when there are no timers: a scheduler sleeps until then or until a wake-up.
    public func nextTimerDue() async throws -> Date? {
        let rows = try await query("SELECT min(claimable_at) FROM baton.timers")
        for try await due in rows.decode(Date?.self) { return due }
        return nil
    }

    /// The timers of one saga, soonest first (for inspection and tests).
    public func timers(sagaID: String) async throws -> [SagaTimer] {
        guard let id = UUID(sagaID: sagaID) else { return [] }
        let rows = try await query(
            "SELECT kind, step, direction, attempt, due_at FROM baton.timers WHERE saga_id = \(id) ORDER BY due_at, timer_key")
        var timers: [SagaTimer] = []
        for try await row in rows {
            let column = RowReader(row)
            timers.append(
                SagaTimer(
                    kind: try column.enumeration("kind", as: SagaTimer.Kind.self),
                    step: try column("step"),
                    direction: try column.optionalEnumeration("direction", as: StepDirection.self),
                    attempt: try column("attempt"),
                    due: try column("due_at")
                ))
        }
        return timers
    }
}
