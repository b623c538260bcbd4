import BatonCore
import Foundation
import PostgresNIO
import Testing

@testable import BatonStore

@Suite("Outbox relay support")
struct OutboxTests {
    typealias Fixture = StoreFixture

    @Test("a relay claims the oldest rows in batches and marks what it published")
    func claimAndMark() async throws {
        try await Fixture.withStore { store in
            var ids: [String] = []
            for minute in 0..<3 {
                let new = try Fixture.startedSaga(now: Fixture.epoch + .minutes(Int64(minute)))
                try await store.createSaga(new, now: new.saga.createdAt)
                ids.append(new.saga.id)
            }
            #expect(try await store.outboxBacklog().count == 3)
            #expect(try await store.outboxBacklog().oldest == Fixture.epoch)

            var seen: [String] = []
            let claimed = try await store.relayOutbox(limit: 2, now: Fixture.epoch + .minutes(5)) { batch in
                seen += batch.map(\.command.sagaID)
                return OutboxPublishResult(published: batch.map(\.id))
            }
            #expect(claimed == 2)
            #expect(seen == Array(ids.prefix(2)))
            #expect(
                try await store.relayOutbox(limit: 2, now: Fixture.epoch + .minutes(5)) { batch in
                    seen += batch.map(\.command.sagaID)
                    return OutboxPublishResult(published: batch.map(\.id))
                } == 1)
            #expect(seen == ids)
            #expect(
                try await store.relayOutbox(limit: 2, now: Fixture.epoch) { _ in
                    Issue.record("an empty outbox hands over no batch")
                    return OutboxPublishResult(published: [])
                } == 0)
            #expect(try await store.outboxBacklog().count == 0)
            #expect(try await store.outboxBacklog().oldest == nil)

            #expect(try await store.pruneOutbox(publishedBefore: Fixture.epoch + .minutes(5)) == 0)
            #expect(try await store.pruneOutbox(publishedBefore: Fixture.epoch + .minutes(6), limit: 2) == 2)
            #expect(try await store.pruneOutbox(publishedBefore: Fixture.epoch + .minutes(6), limit: 2) == 1)
        }
    }

    @Test("each committed write returns the commands it queued with their outbox ids; a sweeping relay leaves them alone")
    func queuedCommandsAndSweep() async throws {
        try await Fixture.withStore { store in
            let new = try Fixture.startedSaga()
            let created = try await store.createSaga(new, now: Fixture.epoch).record.queued
            #expect(created.map(\.command) == new.transition.commands)
            #expect(created.map(\.createdAt) == [Fixture.epoch])
            let rowIDs = try #require(
                try await Fixture.scalar(store, "SELECT array_agg(id ORDER BY id) FROM baton.outbox", as: [Int64].self))
            #expect(created.map(\.id) == rowIDs)

            // A reply queues the next step's command, returned with its row's id.
            let later = Fixture.epoch + .seconds(1)
            let result = try await Fixture.handle(
                Fixture.reply(.succeeded(output: nil), to: new.saga), sagaID: new.saga.id, in: store, now: later)
            let next = try #require(result.record).queued
            #expect(next.map(\.command.step) == [result.record?.saga.steps[1].name])
            #expect(next.map(\.id) == [rowIDs[0] + 1])

            // A relay beside the listener claims only rows older than its grace.
            let sweep = { (cutoff: Date) in
                try await store.relayOutbox(limit: 10, now: later, queuedBefore: cutoff) { batch in
                    OutboxPublishResult(published: batch.map(\.id))
                }
            }
            #expect(try await sweep(Fixture.epoch) == 0)
            // The writer marks what it published; the relay then finds only the rest.
            try await store.markPublished([created[0].id], now: later)
            #expect(try await sweep(later + .seconds(1)) == 1)
            #expect(try await store.outboxBacklog().count == 0)
        }
    }

    @Test("a store that does not wake outbox relays sends no outbox NOTIFY; timers still do")
    func noOutboxNotification() throws {
        let new = try Fixture.startedSaga()
        let notifying = SagaWriteSet(old: nil, new: new.saga, transition: new.transition, idempotency: nil, now: Fixture.epoch)
        #expect(notifying.notifications.contains(StoreWakeup.outbox.payload))
        let quiet = SagaWriteSet(
            old: nil, new: new.saga, transition: new.transition, idempotency: nil, now: Fixture.epoch, notifiesOutbox: false)
        #expect(!quiet.notifications.contains(StoreWakeup.outbox.payload))
        #expect(quiet.notifications.count == notifying.notifications.count - 1)
    }

    @Test("a failed publish stays in the outbox with the attempt and the reason counted")
    func failedPublish() async throws {
        try await Fixture.withStore { store in
            try await store.createSaga(try Fixture.startedSaga(), now: Fixture.epoch)
            try await store.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                OutboxPublishResult(published: [], failed: [batch[0].id: "nats: no responders"])
            }
            try await store.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                #expect(batch.map(\.publishAttempts) == [1])
                return OutboxPublishResult(published: batch.map(\.id))
            }
            #expect(
                try await Fixture.scalar(store, "SELECT last_error FROM baton.outbox", as: String.self) == "nats: no responders")
        }
    }

    @Test("concurrent relays publish every row exactly once")
    func concurrentRelays() async throws {
        try await Fixture.withStore { store in
            let sagas = 150
            for index in 0..<sagas {
                try await store.createSaga(try Fixture.startedSaga(now: Fixture.epoch + .seconds(Int64(index))), now: Fixture.epoch)
            }
            let published = Collector<Int64>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        while true {
                            let claimed = try await store.relayOutbox(limit: 7, now: Fixture.epoch) { batch in
                                // Hold the batch a moment, as a publish to the broker would, so that
                                // the relays really overlap.
                                try await Task.sleep(for: .milliseconds(2))
                                await published.append(contentsOf: batch.map(\.id))
                                return OutboxPublishResult(published: batch.map(\.id))
                            }
                            if claimed == 0 { break }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let ids = await published.values
            #expect(ids.count == sagas)
            #expect(Set(ids).count == sagas)
            #expect(try await store.outboxBacklog().count == 0)
        }
    }

    @Test("rows a relay held when it died are claimable again; while it lives, no one else gets them")
    func relayDiesMidBatch() async throws {
        try await Fixture.withDatabase { url, store in
            for index in 0..<5 {
                try await store.createSaga(try Fixture.startedSaga(now: Fixture.epoch + .seconds(Int64(index))), now: Fixture.epoch)
            }
            // A relay whose closure throws (it crashed mid-batch) leaves its rows unpublished.
            struct Crash: Error {}
            await #expect(throws: Crash.self) {
                try await store.relayOutbox(limit: 10, now: Fixture.epoch) { _ in throw Crash() }
            }
            #expect(try await store.outboxBacklog().count == 5)

            // A relay process that dies holding a batch: its own client, its connection cut by the
            // server as when the process is killed.
            let (claims, claimed) = AsyncStream<Int>.makeStream()
            let (releases, release) = AsyncStream<Void>.makeStream()
            let doomed = Task {
                try await Fixture.withClient(url) { client in
                    let relay = SagaStore(client: client, logger: Fixture.logger)
                    try await relay.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                        claimed.yield(batch.count)
                        // Publishing… while the process is killed.
                        for await _ in releases { break }
                        return OutboxPublishResult(published: batch.map(\.id))
                    }
                }
            }
            var iterator = claims.makeAsyncIterator()
            #expect(await iterator.next() == 5)
            let skipped = try await store.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                Issue.record("rows held by another relay were handed out: \(batch.map(\.id))")
                return OutboxPublishResult(published: [])
            }
            #expect(skipped == 0)

            let terminated = try await Fixture.scalar(
                store,
                """
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()
                """,
                as: Int.self)
            #expect(terminated == 1)
            release.yield()
            // The relay finds out its batch was not recorded, instead of waiting forever. (Which error
            // depends on whether the client noticed the close before the next statement.)
            await #expect {
                try await doomed.value
            } throws: { error in
                error is DatabaseConnectionLost || error is PSQLError
            }

            // The terminated backend releases its row locks as it exits, a moment after the signal.
            for _ in 0..<100 {
                let lingering = try await Fixture.scalar(
                    store,
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()
                    """,
                    as: Int.self)
                if lingering == 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let recovered = try await store.relayOutbox(limit: 10, now: Fixture.epoch) { batch in
                OutboxPublishResult(published: batch.map(\.id))
            }
            #expect(recovered == 5)
            #expect(try await store.outboxBacklog().count == 0)
        }
    }
}
