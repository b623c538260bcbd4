import BatonCore
import BatonStore
import Foundation
import PostgresNIO
import Testing

@Suite("Saga store: creation, atomic transitions, row locks")
struct SagaStoreTests {
    typealias Fixture = StoreFixture

    @Test("numbers far beyond the Int64 range, which jsonb writes back in plain digits, read back as the doubles they were")
    func hugeNumbersReadBack() async throws {
        try await Fixture.withStore { store in
            // Found by schemathesis: 2.39e232 came back from jsonb as 2396835247116677600000…, which
            // the strict reader refused, so the saga could never be read again.
            let input: JSONValue = [
                "amount": 100, "huge": .number(2.3968352471166776e+232), "big": .number(1e20), "tiny": .number(-1e-300),
            ]
            let new = try Fixture.startedSaga(input: input)
            try await store.createSaga(new, now: Fixture.epoch)
            let stored = try #require(try await store.saga(id: new.saga.id))
            #expect(stored.saga.input == input)
        }
    }

    @Test("a created saga reads back exactly, with its history, first command and timers")
    func roundTrip() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            let created = try await store.createSaga(new, now: Fixture.epoch)
            guard case .created(let record) = created else {
                Issue.record("expected a new saga, got \(created)")
                return
            }
            #expect(record.revision == 1)

            let stored = try #require(try await store.saga(id: new.saga.id))
            #expect(stored.saga == new.saga)
            #expect(stored.historyLength == new.transition.history.count)

            let history = try await store.history(sagaID: new.saga.id)
            #expect(history.map(\.seq) == Array(1...new.transition.history.count))
            #expect(history.map(\.entry) == new.transition.history)

            var published: [StepCommand] = []
            try await store.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                published = batch.map(\.command)
                return OutboxPublishResult(published: [])
            }
            #expect(published == new.transition.commands)
            #expect(published.first?.messageID == "\(new.saga.id).reserve.action.1")

            let timers = try await store.timers(sagaID: new.saga.id)
            #expect(Set(timers.map(\.kind)) == [.stepTimeout, .sagaDeadline])
            #expect(timers.first { $0.kind == .sagaDeadline }?.due == Fixture.epoch + .minutes(60))
            #expect(timers.first { $0.kind == .stepTimeout }?.due == Fixture.epoch + .seconds(5))
        }
    }

    @Test("a saga moves through its steps to COMPLETED; a finished saga keeps no timers")
    func fullRun() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            var saga = new.saga
            var now = Fixture.epoch
            for output in [["reservation": "r-1"], ["charge": "c-1"], [:]] as [JSONValue] {
                now = now + .seconds(1)
                let result = try await Fixture.handle(
                    Fixture.reply(.succeeded(output: output), to: saga), sagaID: saga.id, in: store, now: now)
                saga = try #require(result.record).saga
            }
            #expect(saga.status == .completed)

            let stored = try #require(try await store.saga(id: saga.id))
            #expect(stored.saga == saga)
            #expect(stored.finishedAt == now)
            #expect(stored.revision == 4)
            #expect(stored.saga.steps.map(\.output) == [["reservation": "r-1"], ["charge": "c-1"], [:]])
            #expect(try await store.timers(sagaID: saga.id).isEmpty)

            // Every command was rendered from the stored input.
            var commands: [StepCommand] = []
            try await store.relayOutbox(limit: 10, now: now) { batch in
                commands = batch.map(\.command)
                return OutboxPublishResult(published: batch.map(\.id))
            }
            #expect(commands.map(\.step) == ["reserve", "charge", "notify"])
            #expect(commands.map(\.payload) == [["amount": 100], ["amount": 100], ["amount": 100]])
        }
    }

    @Test("the same idempotency key and request returns the first saga; another request is a conflict")
    func idempotentCreation() async throws {
        try await Fixture.withStore { store in
            let key = IdempotencyKey(key: "order-42", requestHash: "hash-a")
            let original = try Fixture.startedSaga(idempotency: key)
            let first = try await store.createSaga(original, now: Fixture.epoch)
            guard case .created(let created) = first else {
                Issue.record("expected a new saga")
                return
            }
            let again = try await store.createSaga(try Fixture.startedSaga(idempotency: key), now: Fixture.epoch)
            guard case .existing(let existing) = again else {
                Issue.record("expected the existing saga, got \(again)")
                return
            }
            #expect(existing.saga.id == created.saga.id)
            #expect(existing.idempotencyKey == "order-42")

            let other = IdempotencyKey(key: "order-42", requestHash: "hash-b")
            await #expect(throws: SagaStoreError.idempotencyConflict(key: "order-42", existingSagaID: created.saga.id)) {
                try await store.createSaga(try Fixture.startedSaga(idempotency: other), now: Fixture.epoch)
            }
            // Nothing of the refused or repeated requests was stored.
            #expect(try await Fixture.scalar(store, "SELECT count(*) FROM baton.sagas", as: Int.self) == 1)
            #expect(try await Fixture.scalar(store, "SELECT count(*) FROM baton.outbox", as: Int.self) == 1)
            #expect(
                try await Fixture.scalar(store, "SELECT count(*) FROM baton.saga_history", as: Int.self)
                    == original.transition.history.count)
        }
    }

    @Test("concurrent submissions with one idempotency key create one saga")
    func concurrentIdempotentCreation() async throws {
        try await Fixture.withStore { store in
            let key = IdempotencyKey(key: "transfer-7", requestHash: "same")
            let results = try await withThrowingTaskGroup(of: SagaCreation.self) { group in
                for _ in 0..<12 {
                    group.addTask { try await store.createSaga(try Fixture.startedSaga(idempotency: key), now: Fixture.epoch) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = results.filter { if case .created = $0 { true } else { false } }
            #expect(created.count == 1)
            #expect(Set(results.map(\.record.saga.id)).count == 1)
            #expect(try await Fixture.scalar(store, "SELECT count(*) FROM baton.outbox", as: Int.self) == 1)
        }
    }

    @Test("a saga of an unregistered workflow version is refused by name")
    func unknownDefinition() async throws {
        try await Fixture.withStore { store in
            var new = try Fixture.startedSaga()
            new.saga.workflowVersion = 9
            await #expect(throws: SagaStoreError.definitionNotFound(name: "store-test", version: 9)) {
                try await store.createSaga(new, now: Fixture.epoch)
            }
            await #expect(throws: SagaStoreError.invalidSagaID("saga-1")) {
                var bad = try Fixture.startedSaga()
                bad.saga.id = "saga-1"
                try await store.createSaga(bad, now: Fixture.epoch)
            }
        }
    }

    @Test("a write that fails mid-transaction stores nothing, and the saga stays usable")
    func atomicFailure() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            let before = try #require(try await store.saga(id: new.saga.id))
            let timersBefore = try await store.timers(sagaID: new.saga.id)

            // PostgreSQL cannot store U+0000 in jsonb: the saga row lock was taken and the reply
            // applied in memory, then the write fails. Nothing of it may remain.
            let poisoned = Fixture.reply(.succeeded(output: ["note": "a\u{0000}b"]), to: new.saga)
            await #expect {
                try await Fixture.handle(poisoned, sagaID: new.saga.id, in: store, now: Fixture.epoch + .seconds(1))
            } throws: { error in
                if case .unstorableValue = error as? SagaStoreError { true } else { false }
            }
            // A decision that throws stores nothing either.
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await store.updateSaga(id: new.saga.id, now: Fixture.epoch) { _, _ in throw Refused() }
            }

            let after = try #require(try await store.saga(id: new.saga.id))
            #expect(after == before)
            #expect(try await store.timers(sagaID: new.saga.id) == timersBefore)
            #expect(try await store.history(sagaID: new.saga.id).count == before.historyLength)
            #expect(try await Fixture.scalar(store, "SELECT count(*) FROM baton.outbox", as: Int.self) == 1)

            // The lock was released: the next reply applies.
            let next = try await Fixture.handle(
                Fixture.reply(.succeeded(output: ["reservation": "r-1"]), to: new.saga), sagaID: new.saga.id, in: store,
                now: Fixture.epoch + .seconds(2))
            #expect(next.record?.saga.cursor == 1)
        }
    }

    @Test("concurrent changes to one saga serialize under its row lock: none is lost")
    func concurrentUpdatesSerialize() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            let writers = 40
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        try await store.updateSaga(id: new.saga.id, now: Fixture.epoch) { record, _ in
                            // A read-modify-write: without the lock, two writers would read the same
                            // count and one increment would be lost.
                            var saga = record.saga
                            saga.steps[2].compensationAttempt += 1
                            let entry = HistoryEntry(
                                kind: .heartbeat, statusBefore: saga.status, statusAfter: saga.status,
                                detail: "writer \(writer) saw \(record.saga.steps[2].compensationAttempt)", at: Fixture.epoch)
                            return SagaChange(
                                saga: saga, transition: SagaTransition(outcome: .applied, effects: [.recordHistory(entry)]))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stored = try #require(try await store.saga(id: new.saga.id))
            #expect(stored.saga.steps[2].compensationAttempt == writers)
            #expect(stored.revision == Int64(1 + writers))
            let history = try await store.history(sagaID: new.saga.id)
            #expect(history.map(\.seq) == Array(1...(new.transition.history.count + writers)))
            // Each writer saw a different count: they ran one after the other.
            let seen = history.filter { $0.entry.kind == .heartbeat }.map { $0.entry.detail.split(separator: " ").last! }
            #expect(Set(seen).count == writers)
        }
    }

    @Test("the same reply delivered many times at once is applied once")
    func concurrentDuplicateReplies() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            let reply = Fixture.reply(.succeeded(output: ["reservation": "r-1"]), to: new.saga)
            let outcomes = try await withThrowingTaskGroup(of: SagaTransition.Outcome?.self) { group in
                for _ in 0..<15 {
                    group.addTask {
                        try await Fixture.handle(reply, sagaID: new.saga.id, in: store, now: Fixture.epoch + .seconds(1))
                            .transition?.outcome
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .applied }.count == 1)
            #expect(outcomes.filter { if case .ignored(.duplicate, _) = $0 { true } else { false } }.count == 14)
            // One command for the next step, whatever the interleaving.
            #expect(
                try await Fixture.scalar(
                    store, "SELECT count(*) FROM baton.outbox WHERE command->>'participant' = 'payments' AND command->>'action' = 'charge'",
                    as: Int.self)
                    == 1)
            // The ignored deliveries are in the history, so "why did this reply not count?" has an answer.
            let ignored = try await store.history(sagaID: new.saga.id).filter { $0.entry.kind == .ignored }
            #expect(ignored.count == 14)
        }
    }

    @Test("a message already in the inbox is not applied again")
    func inbox() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            let heartbeat = Fixture.reply(.inProgress, to: new.saga)
            let first = try await Fixture.handle(
                heartbeat, sagaID: new.saga.id, in: store, inboxMessageID: "reply-1", now: Fixture.epoch + .seconds(3))
            #expect(first.transition?.outcome == .applied)
            let deadline = try #require(first.record).saga.steps[0].replyDeadline
            #expect(deadline == Fixture.epoch + .seconds(8))

            let redelivered = try await Fixture.handle(
                heartbeat, sagaID: new.saga.id, in: store, inboxMessageID: "reply-1", now: Fixture.epoch + .seconds(4))
            guard case .alreadyReceived = redelivered else {
                Issue.record("a redelivered heartbeat must not move the deadline again: \(redelivered)")
                return
            }
            let stored = try #require(try await store.saga(id: new.saga.id))
            #expect(stored.saga.steps[0].replyDeadline == deadline)
            #expect(stored.revision == 2)
            // Nothing else the write carries was stored either: no history entry, no timer change.
            #expect(try await store.history(sagaID: new.saga.id).count == first.record?.historyLength)
            #expect(try await store.timers(sagaID: new.saga.id).contains { $0.due == deadline })

            #expect(try await store.pruneInbox(receivedBefore: Fixture.epoch + .seconds(10)) == 1)
        }
    }

    @Test("history rows cannot be rewritten")
    func historyIsAppendOnly() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            _ = try await store.createSaga(new, now: Fixture.epoch)
            await #expect(throws: PSQLError.self) {
                try await store.client.query("UPDATE baton.saga_history SET detail = 'nothing happened'")
            }
            #expect(try await store.history(sagaID: new.saga.id).map(\.entry) == new.transition.history)
        }
    }

    @Test("unknown and malformed saga ids are simply not found")
    func unknownSaga() async throws {
        try await Fixture.withStore { store async throws in
            #expect(try await store.saga(id: "not-a-uuid") == nil)
            #expect(try await store.saga(id: "0190f5a4-7b1c-7d2e-8f00-000000000000") == nil)
            #expect(try await store.history(sagaID: "not-a-uuid").isEmpty)
            await #expect(throws: SagaStoreError.sagaNotFound(id: "0190f5a4-7b1c-7d2e-8f00-000000000000")) {
                try await Fixture.handle(.start, sagaID: "0190f5a4-7b1c-7d2e-8f00-000000000000", in: store, now: Fixture.epoch)
            }
        }
    }
}

@Suite("Workflow definitions in the store")
struct DefinitionStoreTests {
    @Test("a version registers once; the same content again is a no-op; other content is a conflict")
    func registration() async throws {
        try await StoreFixture.withStore { store in
            let definition = StoreFixture.definition
            guard case .alreadyRegistered(let existing) = try await store.registerDefinition(definition, source: nil, now: .now)
            else {
                Issue.record("the fixture registered this definition already")
                return
            }
            #expect(existing.definition == definition)
            #expect(existing.contentHash == definition.contentHash)
            #expect(existing.source == StoreFixture.definitionSource)

            var changed = definition
            changed.steps[0].timeout = .seconds(9)
            await #expect {
                try await store.registerDefinition(changed, source: nil, now: .now)
            } throws: { error in
                if case .definitionConflict(name: "store-test", version: 1, _, _) = error as? SagaStoreError { true } else { false }
            }

            changed.version = 2
            guard case .registered = try await store.registerDefinition(changed, source: nil, now: .now) else {
                Issue.record("version 2 is new")
                return
            }
            #expect(try await store.definitionVersions(name: "store-test").map(\.definition.version) == [2, 1])
            #expect(try await store.latestDefinition(name: "store-test")?.definition == changed)
            #expect(try await store.definition(name: "store-test", version: 1)?.definition == definition)
            #expect(try await store.definition(name: "store-test", version: 3) == nil)
            #expect(try await store.latestDefinitions().map(\.definition.version) == [2])
        }
    }

    @Test("every workflow in workflows/ survives a trip through the store unchanged")
    func shippedWorkflows() async throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../../../workflows")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "yaml" }
        #expect(!files.isEmpty)
        try await StoreFixture.withStore { store in
            for file in files {
                let text = try String(contentsOf: file, encoding: .utf8)
                let definition = try WorkflowDefinition.parse(text, format: .yaml, source: file.lastPathComponent)
                _ = try await store.registerDefinition(definition, source: text, now: .now)
                let stored = try await store.definition(name: definition.name, version: definition.version)
                #expect(stored?.definition == definition, "\(file.lastPathComponent)")
            }
        }
    }
}
