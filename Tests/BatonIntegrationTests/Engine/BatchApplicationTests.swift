import BatonCore
import BatonStore
import Foundation
import Logging
import Testing

@testable import BatonEngine

/// Events applied in batches by the engine (``SagaRunner/apply(batch:)``), on the real
/// PostgreSQL: one bad event never fails its neighbours, and one saga's events apply in order.
@Suite("Events applied in batches")
struct BatchApplicationTests {
    typealias Fixture = StoreFixture

    /// Sagas of the store's test workflow, each waiting for its first reply.
    static func startedSagas(_ count: Int, in store: SagaStore) async throws -> [SagaInstance] {
        var sagas: [SagaInstance] = []
        for _ in 0..<count {
            let new = try Fixture.startedSaga(now: .now)
            try await store.createSaga(new, now: .now)
            sagas.append(new.saga)
        }
        return sagas
    }

    static func succeeded(_ saga: SagaInstance, _ output: JSONValue, message: String) -> SagaEventRequest {
        SagaEventRequest(event: Fixture.reply(.succeeded(output: output), to: saga), sagaID: saga.id, inboxMessageID: message)
    }

    @Test("two replies for one saga in one batch apply in order: the second sees the first and is a duplicate")
    func oneSagaInOrder() async throws {
        try await Fixture.withStore { store in
            let runner = SagaRunner(store: store)
            try await runner.definition(name: Fixture.definition.name, version: Fixture.definition.version)
            let sagas = try await Self.startedSagas(2, in: store)
            let results = await runner.apply(batch: [
                Self.succeeded(sagas[0], ["r": "first"], message: "a1"),
                Self.succeeded(sagas[1], ["r": "other"], message: "b1"),
                Self.succeeded(sagas[0], ["r": "second"], message: "a2"),
            ])
            let first = try #require(try results[0].get().transition)
            #expect(first.outcome == .applied)
            let second = try #require(try results[2].get().transition)
            guard case .ignored(.duplicate, _) = second.outcome else {
                Issue.record("the second reply was not a duplicate of the first: \(second.outcome)")
                return
            }
            #expect(try results[1].get().transition?.outcome == .applied)
            let stored = try #require(try await store.saga(id: sagas[0].id))
            #expect(stored.saga.steps[0].output == ["r": "first"])
        }
    }

    @Test("a refused event, an unstorable one and one for no saga fail alone; their neighbours are applied")
    func poisonAmongGood() async throws {
        try await Fixture.withStore { store in
            let runner = SagaRunner(store: store)
            try await runner.definition(name: Fixture.definition.name, version: Fixture.definition.version)
            let sagas = try await Self.startedSagas(4, in: store)
            var refused = Self.succeeded(sagas[1], ["r": "refused"], message: "m1")
            refused.check = { _ in throw MisaddressedReply(description: "wrong subject") }
            let results = await runner.apply(batch: [
                Self.succeeded(sagas[0], ["r": "good"], message: "m0"),
                refused,
                // PostgreSQL cannot store U+0000 in jsonb: this write fails, and its batch with it.
                Self.succeeded(sagas[2], ["r": "a\u{0000}b"], message: "m2"),
                Self.succeeded(sagas[3], ["r": "good"], message: "m3"),
                SagaEventRequest(
                    event: Fixture.reply(.succeeded(output: nil), to: sagas[3]), sagaID: "01900000-0000-7000-8000-000000000000",
                    inboxMessageID: "m4"),
            ])
            for index in [0, 3] {
                #expect(try results[index].get().transition?.outcome == .applied)
                #expect(try await store.saga(id: sagas[index].id)?.saga.steps[0].output == ["r": "good"])
            }
            #expect(throws: MisaddressedReply.self) { try results[1].get() }
            #expect {
                try results[2].get()
            } throws: { error in
                if case .unstorableValue = error as? SagaStoreError { true } else { false }
            }
            #expect {
                try results[4].get()
            } throws: { error in
                if case .sagaNotFound = error as? SagaStoreError { true } else { false }
            }
            for index in [1, 2] { #expect(try await store.saga(id: sagas[index].id)?.saga.steps[0].status == .running) }
            // Nothing of the failed ones reached the inbox: a redelivery is applied.
            let retried = await runner.apply(batch: [Self.succeeded(sagas[1], ["r": "again"], message: "m1")])
            #expect(try retried[0].get().transition?.outcome == .applied)
        }
    }

    @Test("a definition the runner has not cached is read in the batch's own transaction, and the events applied")
    func definitionLoaded() async throws {
        try await Fixture.withStore { store in
            let runner = SagaRunner(store: store)
            let sagas = try await Self.startedSagas(2, in: store)
            #expect(runner.cached(name: Fixture.definition.name, version: Fixture.definition.version) == nil)
            let results = await runner.apply(batch: sagas.enumerated().map { Self.succeeded($1, ["r": "ok"], message: "d\($0)") })
            for result in results { #expect(try result.get().transition?.outcome == .applied) }
            #expect(runner.cached(name: Fixture.definition.name, version: Fixture.definition.version) != nil)
        }
    }
}
