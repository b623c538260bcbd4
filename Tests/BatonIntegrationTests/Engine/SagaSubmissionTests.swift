import BatonCore
import BatonStore
import Foundation
import Logging
import Testing

@testable import BatonEngine

/// Submissions and requests resolve their workflow through the engine's definition cache, on the
/// real PostgreSQL.
@Suite("Submitting sagas")
struct SagaSubmissionTests {
    typealias Fixture = StoreFixture

    @Test("a submit runs the newest version, also one registered after the older one was cached")
    func newestVersion() async throws {
        try await Fixture.withStore { store in
            let runner = SagaRunner(store: store)
            let input: JSONValue = ["amount": 5]
            let first = try await runner.submit(workflow: "store-test", input: input)
            #expect(first.record.saga.workflowVersion == 1)
            #expect(first.record.saga.workflowHash == Fixture.definition.contentHash)

            // Another replica registers version 2: this runner has version 1 cached.
            var changed = Fixture.definition
            changed.version = 2
            changed.description = "the second version"
            _ = try await store.registerDefinition(changed, source: nil, now: .now)
            let second = try await runner.submit(workflow: "store-test", input: input)
            #expect(second.record.saga.workflowVersion == 2)
            #expect(second.record.saga.workflowHash == changed.contentHash)

            let pinned = try await runner.submit(workflow: "store-test", version: 1, input: input)
            #expect(pinned.record.saga.workflowVersion == 1)
            await #expect(throws: SagaRunner.SubmissionError.unknownVersion(workflow: "store-test", version: 3)) {
                try await runner.submit(workflow: "store-test", version: 3, input: input)
            }
            await #expect(throws: SagaRunner.SubmissionError.unknownWorkflow("nope")) {
                try await runner.submit(workflow: "nope", input: input)
            }
            await #expect(throws: SagaRunner.SubmissionError.unknownWorkflow("nope")) {
                try await runner.submit(workflow: "nope", version: 1, input: input)
            }
        }
    }

    @Test("a cancel reaches a saga whose definition this replica never loaded: the runner loads it")
    func cancelWithEmptyCache() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga(now: .now)
            try await store.createSaga(new, now: .now)
            let runner = SagaRunner(store: store)
            #expect(runner.cached(name: "store-test", version: 1) == nil)
            let (record, outcome) = try await runner.cancel(id: new.saga.id, reason: "asked by a test")
            #expect(outcome == .applied)
            #expect(record.saga.status == .compensating || record.saga.status == .failed)
            #expect(runner.cached(name: "store-test", version: 1) != nil)
        }
    }
}
