import BatonCore
import BatonStore
import Foundation
import Testing

@Suite("Saga store: changes of several sagas in one transaction")
struct SagaBatchTests {
    typealias Fixture = StoreFixture

    @Test("each change of a batch is written as alone; one that cannot be decided is left out, its error in its place")
    func isolatedDecisions() async throws {
        try await Fixture.withStore { store in
            var sagas: [SagaInstance] = []
            for amount in 1...4 {
                let new = try Fixture.startedSaga(input: ["amount": .integer(Int64(amount))], now: Fixture.epoch)
                try await store.createSaga(new, now: Fixture.epoch)
                sagas.append(new.saga)
            }
            // The last saga's reply was applied before: its message is in the inbox.
            let now = Fixture.epoch + .seconds(1)
            try await store.updateSaga(id: sagas[3].id, inboxMessageID: "seen", now: now) { record, _ in
                try Fixture.transition(record, Fixture.reply(.succeeded(output: ["r": 1]), to: record.saga), now: now)
            }
            let before = try await store.saga(id: sagas[1].id)
            struct Refused: Error {}
            let missing = "01900000-0000-7000-8000-000000000000"
            let items =
                sagas.enumerated().map { index, saga in SagaBatchItem(sagaID: saga.id, inboxMessageID: index == 3 ? "seen" : "m\(index)") }
                + [SagaBatchItem(sagaID: missing)]
            let results = try await store.updateSagas(items, now: now) { index, record, _ in
                if index == 1 { throw Refused() }
                return try Fixture.transition(record, Fixture.reply(.succeeded(output: ["r": 2]), to: record.saga), now: now)
            }

            #expect(results.count == 5)
            for index in [0, 2] {
                let updated = try #require(try results[index].get().record)
                #expect(updated.saga.id == sagas[index].id)
                #expect(updated.saga.steps[0].status == .succeeded)
                var stored = try #require(try await store.saga(id: sagas[index].id))
                // A read record has no commands queued by its write; the written one lists them.
                #expect(updated.queued.map(\.command.step) == ["charge"])
                stored.queued = updated.queued
                #expect(stored == updated)
                #expect(try await store.history(sagaID: sagas[index].id).count == updated.historyLength)
            }
            #expect(throws: Refused.self) { try results[1].get() }
            #expect(try await store.saga(id: sagas[1].id) == before)
            guard case .success(.alreadyReceived) = results[3] else {
                Issue.record("the change of a message in the inbox was written again: \(results[3])")
                return
            }
            #expect(throws: SagaStoreError.self) { try results[4].get() }
            // One statement wrote every saga's commands: each row belongs to the saga its command names.
            let misfiled = try await Fixture.scalar(
                store, "SELECT count(*) FROM baton.outbox WHERE command->>'sagaID' <> saga_id::text", as: Int64.self)
            #expect(misfiled == 0)
            let queued = try await Fixture.scalar(store, "SELECT count(*) FROM baton.outbox", as: Int64.self)
            // A first command per saga, and the next one for each saga written (three of the four).
            #expect(queued == Int64(7))
        }
    }

    @Test("a write that fails takes the whole batch with it: nothing of any change is stored")
    func atomicBatch() async throws {
        try await Fixture.withStore { store in
            var sagas: [SagaInstance] = []
            for _ in 1...3 {
                let new = try Fixture.startedSaga(now: Fixture.epoch)
                try await store.createSaga(new, now: Fixture.epoch)
                sagas.append(new.saga)
            }
            var before: [SagaRecord?] = []
            for saga in sagas { before.append(try await store.saga(id: saga.id)) }
            let now = Fixture.epoch + .seconds(1)
            // PostgreSQL cannot store U+0000 in jsonb: the second write fails.
            await #expect(throws: SagaStoreError.self) {
                try await store.updateSagas(sagas.map { SagaBatchItem(sagaID: $0.id) }, now: now) { index, record, _ in
                    let output: JSONValue = index == 1 ? ["note": "a\u{0000}b"] : ["note": "fine"]
                    return try Fixture.transition(record, Fixture.reply(.succeeded(output: output), to: record.saga), now: now)
                }
            }
            for (saga, old) in zip(sagas, before) { #expect(try await store.saga(id: saga.id) == old) }
        }
    }
}
