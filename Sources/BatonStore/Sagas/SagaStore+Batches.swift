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
    ///   - decide: Given an item's position in `items` and its saga as stored (locked), the change.
    ///     It runs while every lock of the batch is held: keep it to pure computation.
    /// - Returns: One result per item, in order.
    public func updateSagas(
        _ items: [SagaBatchItem],
        now: Date,
        _ decide: (Int, SagaRecord) throws -> SagaChange
    ) async throws -> [Result<SagaUpdateResult, any Error>] {
        let ids = Self.batchIDs(items.map(\.sagaID))
        let known = ids.compactMap { $0 }
        let (results, queued) = try await transaction { connection -> ([Result<SagaUpdateResult, any Error>], [[Int64]]) in
            let records = known.isEmpty ? [:] : try await loadSagas(known, on: connection, lock: true)
            var results: [Result<SagaUpdateResult, any Error>] = []
            var queued: [[Int64]] = []
            for (index, item) in items.enumerated() {
                guard let id = ids[index], let record = records[id] else {
                    results.append(.failure(SagaStoreError.sagaNotFound(id: item.sagaID)))
                    queued.append([])
                    continue
                }
                let change: SagaChange
                do {
                    change = try decide(index, record)
                } catch {
                    results.append(.failure(error))
                    queued.append([])
                    continue
                }
                let (result, outbox) = try await apply(
                    change, to: record, inboxMessageID: item.inboxMessageID, on: connection, now: now)
                results.append(.success(result))
                queued.append(outbox)
            }
            return (results, queued)
        }
        for (result, ids) in zip(results, queued) {
            if case .success(.updated(_, let transition)) = result { announce(ids, transition.commands, now: now) }
        }
        return results
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
