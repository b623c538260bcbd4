import BatonCore
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import BatonEngine
@testable import BatonStore

/// `baton dev` replaces a version no saga has run. The store refuses once a saga has, and a saga
/// that started on the old content in the moment of a replacement is parked, never run on content
/// it did not pin.
@Suite("Replacing a workflow version in development")
struct DefinitionReplacementTests {
    typealias Fixture = StoreFixture

    static func changed(_ timeout: String) throws -> WorkflowDefinition {
        try WorkflowDefinition.parse(
            Fixture.definitionSource.replacingOccurrences(of: "timeout: 5s", with: "timeout: \(timeout)"), format: .yaml)
    }

    @Test("a version no saga ran takes new content only when replacing is asked for; once a saga ran it, it is refused")
    func replaceUnused() async throws {
        try await Fixture.withStore { store in
            let changed = try Self.changed("6s")
            await #expect(throws: SagaStoreError.self) { try await store.registerDefinition(changed, source: nil, now: .now) }
            guard case .replaced = try await store.registerDefinition(changed, source: "changed", now: .now, replacingUnused: true) else {
                Issue.record("not replaced")
                return
            }
            #expect(try await store.definition(name: "store-test", version: 1)?.contentHash == changed.contentHash)
            guard case .alreadyRegistered = try await store.registerDefinition(changed, source: nil, now: .now, replacingUnused: true)
            else {
                Issue.record("the same content again is not a no-op")
                return
            }

            let new = try Fixture.startedSaga()
            var saga = new
            // The fixture's saga pins the fixture's content; this one pins what is registered now.
            saga.saga.workflowHash = changed.contentHash
            try await store.createSaga(saga, now: Fixture.epoch)
            await #expect {
                try await store.registerDefinition(try Self.changed("7s"), source: nil, now: .now, replacingUnused: true)
            } throws: { error in
                guard case SagaStoreError.definitionInUse(let name, let version) = error else { return false }
                return name == "store-test" && version == 1 && "\(error)".contains("version 2")
            }
            #expect(try await store.definition(name: "store-test", version: 1)?.contentHash == changed.contentHash)
        }
    }

    @Test("a saga whose pinned content was replaced as it started is parked with the reason, not run on the new content")
    func sagaOnReplacedContentIsParked() async throws {
        try await Fixture.withStore { store in
            let runner = SagaRunner(store: store)
            let new = try Fixture.startedSaga()
            try await store.createSaga(new, now: Fixture.epoch)
            try await runner.definition(name: "store-test", version: 1)
            // What a replacement racing this saga's start leaves: the version holds other content.
            let changed = try Self.changed("6s")
            try await store.client.query(
                """
                UPDATE baton.workflow_definitions
                SET content_hash = \(changed.contentHash), definition = \(String(decoding: changed.canonicalJSON, as: UTF8.self))::jsonb
                WHERE name = 'store-test' AND version = 1
                """)
            runner.forgetDefinition(name: "store-test", version: 1)

            let result = try await runner.apply(Fixture.reply(.succeeded(output: ["reservation": "r"]), to: new.saga), to: new.saga.id)
            let saga = try #require(result.record?.saga)
            #expect(saga.status == .suspended)
            #expect(saga.suspensionReason?.contains("was replaced after this saga pinned it") == true)
        }
    }
}
