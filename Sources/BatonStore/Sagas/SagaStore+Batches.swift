import BatonCore
import Foundation
import PostgresNIO

/// One change of a batch (``SagaStore/updateSagas(_:now:_:)``): the saga it is for, and the id of
/// the message that caused it, recorded in the inbox as ``SagaStore/updateSaga(id:inboxMessageID:now:_:)``
/// records it.
public struct SagaBatchItem: Sendable, Hashable {
    public var sagaID: String
    public var inboxMessageID: String?

    public init(sagaID: String, inboxMessageID: String? = nil) {
        self.sagaID = sagaID
        self.inboxMessageID = inboxMessageID
    }
}

extension SagaStore {
    /// Changes several sagas in one transaction: their row locks taken in one statement (in the
    /// order of their ids, so batches that overlap never deadlock), their steps read in another,
    /// each changed as ``updateSaga(id:inboxMessageID:now:_:)`` changes one, and one commit.
    ///
    /// A change that cannot be decided (`decide` throws, or there is no such saga) is left out and
    /// its error returned in its place; the others are written. A write that fails aborts the whole
    /// transaction, and this throws: apply the changes one at a time then, so the bad one fails alone.
    ///
    /// - Parameters:
    ///   - items: At most one per saga (a saga's second change must see its first: put it in the
    ///     next batch).
    ///   - decide: Given an item's position in `items` and its saga as stored (locked), the change
    ///     (it may read more through ``LockedReads``). It runs while every lock of the batch is
    ///     held: keep it to pure computation and the reads it needs.
    /// - Returns: One result per item, in order; an updated record lists the commands its write
    ///   queued (``SagaRecord/queued``).
    public func updateSagas(
        _ items: [SagaBatchItem],
        now: Date,
        _ decide: (Int, SagaRecord, LockedReads) async throws -> SagaChange
    ) async throws -> [Result<SagaUpdateResult, any Error>] {
        let ids = Self.batchIDs(items.map(\.sagaID))
        let known = ids.compactMap { $0 }
        return try await transaction { connection -> [Result<SagaUpdateResult, any Error>] in
            let records = known.isEmpty ? [:] : try await loadSagas(known, on: connection, lock: true)
            let reads = LockedReads(store: self, connection: connection)
            var results = [Result<SagaUpdateResult, any Error>?](repeating: nil, count: items.count)
            var writes: [(index: Int, write: SagaWrite)] = []
            for (index, item) in items.enumerated() {
                guard let id = ids[index], let record = records[id] else {
                    results[index] = .failure(SagaStoreError.sagaNotFound(id: item.sagaID))
                    continue
                }
                do {
                    let change = try await decide(index, record, reads)
                    writes.append((index, SagaWrite(change: change, record: record, inboxMessageID: item.inboxMessageID)))
                } catch {
                    results[index] = .failure(error)
                }
            }
            let written = try await apply(writes.map(\.write), on: connection, now: now)
            for (position, result) in written.enumerated() { results[writes[position].index] = .success(result) }
            // Every index was decided or failed above.
            return results.compactMap { $0 }
        }
    }

    /// The UUIDs of a batch's saga ids (`nil` for text that is no saga id), which must be distinct:
    /// a saga's second change must see its first, so it goes in the next batch.
    static func batchIDs(_ sagaIDs: [String]) -> [UUID?] {
        let ids = sagaIDs.map { UUID(sagaID: $0) }
        let known = ids.compactMap { $0 }
        precondition(Set(known).count == known.count, "a batch holds at most one change per saga")
        return ids
    }
}

/// One saga's change within a batch write (``SagaStore/apply(_:on:now:)``).
struct SagaWrite {
    var change: SagaChange
    var record: SagaRecord
    var inboxMessageID: String?
}

extension SagaStore {
    /// Writes the changes of several sagas, whose rows the transaction on `connection` has locked,
    /// with one statement (``SagaBatchUpdateStatement``): one plan and one executor start for the
    /// whole batch instead of one per saga. One change alone takes the single-saga statement.
    /// - Returns: For each write, in order, the result.
    func apply(_ writes: [SagaWrite], on connection: PostgresConnection, now: Date) async throws -> [SagaUpdateResult] {
        if writes.count <= 1 {
            guard let write = writes.first else { return [] }
            return [try await apply(write.change, to: write.record, inboxMessageID: write.inboxMessageID, on: connection, now: now)]
        }
        var sets: [SagaWriteSet] = []
        var json = JSONWriter()
        json.array(writes) { json, write in
            guard write.change.saga.id == write.record.saga.id, let id = UUID(sagaID: write.record.saga.id) else {
                preconditionFailure("a change for saga \(write.change.saga.id) was applied to saga \(write.record.saga.id)")
            }
            let set = SagaWriteSet(
                old: write.record, new: write.change.saga, transition: write.change.transition, idempotency: nil, now: now,
                notifiesOutbox: wakesOutboxRelays)
            sets.append(set)
            json.object { json in
                json.member("id", id.uuidString)
                json.member("inbox_message_id", write.inboxMessageID)
                json.key("doc")
                json.raw(set.encoded())
            }
        }
        var written: [UUID: (revision: Int64, outboxIDs: [Int64])] = [:]
        let statement = SagaBatchUpdateStatement(documents: json.text, receivedAt: now)
        // Checked first, as every statement is (``PostgresConnection/run(_:logger:)``).
        guard !connection.isClosed else { throw DatabaseConnectionLost() }
        for try await (id, revision, _, outboxIDs) in try await connection.execute(statement, logger: logger) {
            written[id] = (revision, outboxIDs)
        }
        return try zip(writes, sets).map { write, set in
            guard let id = UUID(sagaID: write.record.saga.id), let row = written[id] else {
                // The saga's row is locked, so it exists: the message was in the inbox.
                if write.inboxMessageID != nil { return .alreadyReceived }
                throw SagaStoreError.sagaNotFound(id: write.record.saga.id)
            }
            let updated = SagaRecord(
                saga: write.change.saga,
                revision: row.revision,
                idempotencyKey: write.record.idempotencyKey,
                historyLength: set.saga.historyLength,
                finishedAt: set.saga.finishedAt.map(Date.init(epochMicroseconds:)),
                queued: Self.queued(row.outboxIDs, write.change.transition.commands, now: now)
            )
            return .updated(updated, write.change.transition)
        }
    }
}

/// The writes of several sagas' transitions in one statement, prepared once per connection.
/// `$1` is a JSON array with one object per saga: `id`, `inbox_message_id` (or null) and `doc`, its
/// ``SagaWriteSet`` document; `$2` is when the messages were received. A saga whose message the
/// inbox holds already writes nothing; each row of the result is a saga that was written: its id,
/// new revision, and the ids of the outbox rows it queued.
struct SagaBatchUpdateStatement: PostgresPreparedStatement {
    typealias Row = (UUID, Int64, Int64, [Int64])
    static let name = "baton_saga_update_batch"
    static let bindingDataTypes: [PostgresDataType] = [.text, .timestamptz]
    static let sql = """
            WITH w AS (
                SELECT b.value->'doc' AS doc, (b.value->>'id')::uuid AS id, b.value->>'inbox_message_id' AS message_id, b.n
                FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS b(value, n)
            ),
            inbox AS (
                INSERT INTO baton.inbox (message_id, saga_id, received_at)
                SELECT w.message_id, w.id, $2 FROM w WHERE w.message_id IS NOT NULL
                ON CONFLICT (message_id) DO NOTHING
                RETURNING saga_id
            ),
            saga AS (
                UPDATE baton.sagas t SET \(SagaStore.sagaUpdate)
                FROM w, \(SagaStore.sagaRecord)
                WHERE t.id = w.id AND (w.message_id IS NULL OR w.id IN (SELECT saga_id FROM inbox))
                RETURNING t.id, t.revision
            ),
            \(SagaStore.stepsUpdated)
            \(SagaStore.effects)
            SELECT saga.id, saga.revision, (SELECT count(*) FROM notified),
                (SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') FROM outbox o WHERE o.saga_id = saga.id)
            FROM saga
        """

    var documents: String
    var receivedAt: Date

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(documents)
        bindings.append(receivedAt)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
