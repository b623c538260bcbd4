import BatonCore
import BatonStore
import Foundation
import PostgresNIO
import Testing

@Suite("Saga lists: filters, stuck sagas, cursor paging")
struct SagaListTests {
    typealias Fixture = StoreFixture

    /// Sagas in every interesting state, created a minute apart (s6 first, so that its retry timers
    /// come due before anyone else's).
    struct Population {
        var s1 = "", s2 = "", s3 = "", s4 = "", s5 = "", s6 = "", s7 = ""
    }

    static func populate(_ store: SagaStore) async throws -> Population {
        var population = Population()
        let epoch = Fixture.epoch
        var other = Fixture.definition
        other.name = "store-test-b"
        try await store.registerDefinition(other, source: nil, now: epoch)

        func create(_ minute: Int64, definition: WorkflowDefinition = Fixture.definition) async throws -> SagaInstance {
            let now = epoch + .minutes(minute)
            var system = SystemRandomNumberGenerator()
            var machine = try SagaStateMachine(
                definition: definition,
                saga: SagaInstance(id: SagaID.make(now: now, random: &system), definition: definition, input: ["amount": 5], now: now))
            var random = SeededRandomNumberGenerator(seed: 1)
            let transition = machine.handle(.start, now: now, random: &random)
            try await store.createSaga(NewSaga(saga: machine.saga, transition: transition), now: now)
            return machine.saga
        }
        func reply(_ status: ReplyStatus, _ saga: inout SagaInstance, at now: Date) async throws {
            let result = try await Fixture.handle(Fixture.reply(status, to: saga), sagaID: saga.id, in: store, now: now)
            saga = try #require(result.record).saga
        }

        // s6: retried twice, still running.
        var s6 = try await create(0)
        try await reply(.retry(after: nil, message: "busy"), &s6, at: epoch + .seconds(1))
        for second in [2, 5] as [Int64] {
            let now = epoch + .seconds(second)
            let due = try await store.claimDueTimers(now: now, limit: 10, lease: .seconds(30))
            #expect(due.map(\.timer.kind) == [.retryBackoff])
            guard case .fired(let record, _) = try await TimerTests.fire(due[0], in: store, now: now) else {
                throw CancellationError()
            }
            s6 = record.saga
            if second == 2 { try await reply(.retry(after: nil, message: "busy"), &s6, at: epoch + .seconds(3)) }
        }
        population.s6 = s6.id

        // s1–s3: completed.
        for (index, minute) in [1, 2, 3].enumerated() {
            var saga = try await create(Int64(minute))
            for output in [["reservation": "r"], ["charge": "c"], [:]] as [JSONValue] {
                try await reply(.succeeded(output: output), &saga, at: saga.createdAt + .seconds(1))
            }
            #expect(saga.status == .completed)
            switch index {
            case 0: population.s1 = saga.id
            case 1: population.s2 = saga.id
            default: population.s3 = saga.id
            }
        }

        // s4: the pivot failed, undoing the reservation.
        var s4 = try await create(4)
        try await reply(.succeeded(output: ["reservation": "r"]), &s4, at: s4.createdAt + .seconds(1))
        try await reply(.failed(code: "card_declined", message: "declined"), &s4, at: s4.createdAt + .seconds(2))
        #expect(s4.status == .compensating)
        population.s4 = s4.id

        // s5: as s4, and the release failed too: waiting for an operator.
        var s5 = try await create(5)
        try await reply(.succeeded(output: ["reservation": "r"]), &s5, at: s5.createdAt + .seconds(1))
        try await reply(.failed(code: "card_declined", message: "declined"), &s5, at: s5.createdAt + .seconds(2))
        try await reply(.failed(code: "gone", message: "reservation expired"), &s5, at: s5.createdAt + .seconds(3))
        #expect(s5.status == .suspended)
        population.s5 = s5.id

        // s7: another workflow, just started.
        population.s7 = try await create(6, definition: other).id
        return population
    }

    @Test("filters by status, workflow, creation time and the ways a saga can be stuck")
    func filters() async throws {
        try await Fixture.withStore { store in
            let p = try await Self.populate(store)
            let now = Fixture.epoch + .minutes(10)
            func ids(_ query: SagaListQuery) async throws -> [String] {
                try await store.listSagas(query, now: now).sagas.map(\.id)
            }

            #expect(try await ids(SagaListQuery()) == [p.s7, p.s5, p.s4, p.s3, p.s2, p.s1, p.s6])
            #expect(try await ids(SagaListQuery(statuses: [.completed])) == [p.s3, p.s2, p.s1])
            #expect(try await ids(SagaListQuery(statuses: [.completed, .suspended])) == [p.s5, p.s3, p.s2, p.s1])
            #expect(try await ids(SagaListQuery(workflow: "store-test-b")) == [p.s7])
            #expect(
                try await ids(SagaListQuery(createdFrom: Fixture.epoch + .minutes(2), createdBefore: Fixture.epoch + .minutes(5)))
                    == [p.s4, p.s3, p.s2])

            #expect(try await ids(SagaListQuery(stuck: [.runningLongerThan(.minutes(8))])) == [p.s6])
            #expect(try await ids(SagaListQuery(stuck: [.retriedMoreThan(1)])) == [p.s6])
            #expect(try await ids(SagaListQuery(stuck: [.awaitingReplySince(Fixture.epoch + .minutes(5))])) == [p.s4, p.s6])
            #expect(try await ids(SagaListQuery(stuck: [.compensating])) == [p.s4])
            #expect(try await ids(SagaListQuery(stuck: [.suspended])) == [p.s5])
            #expect(try await ids(SagaListQuery(stuck: [.compensating, .suspended])) == [p.s5, p.s4])
            // Filters combine: stuck sagas of one workflow.
            #expect(try await ids(SagaListQuery(workflow: "store-test-b", stuck: [.suspended])).isEmpty)

            let s6 = try #require(try await store.listSagas(SagaListQuery(stuck: [.retriedMoreThan(1)]), now: now).sagas.first)
            #expect(s6.attempts == 3)
            #expect(s6.retries == 2)
            #expect(s6.status == .processing)
            #expect(s6.currentStep == "reserve")
            #expect(s6.awaitingReplySince == Fixture.epoch + .seconds(5))
            let s5 = try #require(try await store.listSagas(SagaListQuery(stuck: [.suspended]), now: now).sagas.first)
            #expect(s5.suspensionReason != nil)
            #expect(s5.currentStep == "reserve")

            #expect(try await store.activeSagaCounts() == [.processing: 2, .compensating: 1, .suspended: 1])
        }
    }

    @Test("cursor paging walks every saga once, and new sagas do not shift later pages")
    func paging() async throws {
        try await Fixture.withStore { store in
            let p = try await Self.populate(store)
            let now = Fixture.epoch + .minutes(10)
            let first = try await store.listSagas(SagaListQuery(limit: 3), now: now)
            #expect(first.sagas.map(\.id) == [p.s7, p.s5, p.s4])
            let cursor = try #require(first.next)

            // A saga created between two page requests lands before the first page, not on the next.
            try await store.createSaga(try Fixture.startedSaga(now: Fixture.epoch + .minutes(7)), now: now)

            let second = try await store.listSagas(SagaListQuery(limit: 3, after: try SagaPageCursor(encoded: cursor.encoded)), now: now)
            #expect(second.sagas.map(\.id) == [p.s3, p.s2, p.s1])
            let third = try await store.listSagas(SagaListQuery(limit: 3, after: second.next), now: now)
            #expect(third.sagas.map(\.id) == [p.s6])
            #expect(third.next == nil)

            // Same-time sagas are ordered by id, so none is skipped at a page boundary.
            let sameTime = Fixture.epoch + .minutes(30)
            for _ in 0..<5 { try await store.createSaga(try Fixture.startedSaga(now: sameTime), now: sameTime) }
            var walked: [String] = []
            var after: SagaPageCursor?
            repeat {
                let page = try await store.listSagas(SagaListQuery(createdFrom: sameTime, limit: 2, after: after), now: now)
                walked += page.sagas.map(\.id)
                after = page.next
            } while after != nil
            #expect(walked.count == 5)
            #expect(Set(walked).count == 5)
        }
    }

    @Test("a cursor the store did not issue is refused with a reason")
    func invalidCursor() {
        for text in ["", "garbage", "djE6MTIz", SagaPageCursorSample.wrongVersion] {
            #expect(throws: SagaStoreError.self) { try SagaPageCursor(encoded: text) }
        }
    }

    enum SagaPageCursorSample {
        /// "v2:1:0190f5a4-7b1c-7d2e-8f00-000000000000", base64url.
        static let wrongVersion = Data("v2:1:0190f5a4-7b1c-7d2e-8f00-000000000000".utf8).base64EncodedString()
    }
}
