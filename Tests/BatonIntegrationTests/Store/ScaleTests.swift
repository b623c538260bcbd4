import BatonCore
import Foundation
import PostgresNIO
import Testing

@testable import BatonStore

/// The hot paths stay on indexes that hold only live work, however many finished sagas pile up.
///
/// The plans are printed (EXPLAIN ANALYZE) so that `docs/storage.md` can quote them; the test asserts
/// which index each query uses and that none scans a whole table. Timings are printed, never asserted.
@Suite("Store at scale: one million finished sagas")
struct ScaleTests {
    typealias Fixture = StoreFixture

    static let finishedSagas = 1_000_000
    static let liveSagas = 100

    @Test("active-saga, due-timer and outbox lookups use indexes that skip finished rows")
    func plansWithMillionFinishedSagas() async throws {
        try await Fixture.withStore { store in
            let clock = ContinuousClock()
            let seeding = try await clock.measure {
                try await store.client.query(
                    """
                    INSERT INTO baton.sagas (
                        id, workflow, workflow_version, workflow_hash, status, direction, position, current_step, input,
                        attempts, retries, history_length, revision, created_at, updated_at, finished_at)
                    SELECT gen_random_uuid(), 'store-test', 1, \(Fixture.definition.contentHash),
                        CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
                        CASE WHEN i % 10 = 0 THEN 'compensation' ELSE 'action' END,
                        CASE WHEN i % 10 = 0 THEN 0 ELSE 2 END, 'notify', '{"amount": 100}'::jsonb, 3, 0, 8, 4,
                        ts, ts + interval '2 seconds', ts + interval '2 seconds'
                    FROM generate_series(1, \(Self.finishedSagas)) AS i,
                        LATERAL (SELECT \(Fixture.epoch - .minutes(60 * 24 * 30))::timestamptz + i * interval '2 seconds' AS ts) t
                    """)
                try await store.client.query(
                    """
                    INSERT INTO baton.outbox (saga_id, command, created_at, published_at)
                    SELECT gen_random_uuid(), '{}'::jsonb, ts, ts
                    FROM generate_series(1, \(Self.finishedSagas)) AS i,
                        LATERAL (SELECT \(Fixture.epoch - .minutes(60 * 24 * 30))::timestamptz + i * interval '2 seconds' AS ts) t
                    """)
            }
            for index in 0..<Self.liveSagas {
                let now = Fixture.epoch + .seconds(Int64(index))
                try await store.createSaga(try Fixture.startedSaga(now: now), now: now)
            }
            try await store.client.query("VACUUM ANALYZE baton.sagas")
            try await store.client.query("VACUUM ANALYZE baton.outbox")
            try await store.client.query("VACUUM ANALYZE baton.timers")
            print("seeded \(Self.finishedSagas) finished sagas and published outbox rows in \(seeding)")

            // Finished sagas keep no timers: the scheduler's table holds live work only.
            #expect(try await Fixture.scalar(store, "SELECT count(*) FROM baton.timers", as: Int.self) == Self.liveSagas * 2)

            let now = Fixture.epoch + .minutes(10)
            // For each query, the indexes the planner may rightly choose. A filter that matches many
            // rows (one saga in ten failed) is answered fastest by walking the newest-first index and
            // stopping at the page size; a selective one by its own index.
            let checks: [(name: String, query: PostgresQuery, indexes: [String], analyze: Bool)] = [
                ("in-flight counts by status", SagaStore.activeCountsQuery, ["sagas_active"], true),
                (
                    "stuck sagas (running > 5m, or suspended)",
                    SagaStore.listQuery(SagaListQuery(stuck: [.runningLongerThan(.minutes(5)), .suspended]), now: now),
                    ["sagas_active"], true
                ),
                ("newest sagas, first page", SagaStore.listQuery(SagaListQuery(), now: now), ["sagas_created"], true),
                (
                    "failed sagas (one in ten), first page", SagaStore.listQuery(SagaListQuery(statuses: [.failed]), now: now),
                    ["sagas_status_created", "sagas_created"], true
                ),
                (
                    "a rare workflow's sagas", SagaStore.listQuery(SagaListQuery(workflow: "store-test-b"), now: now),
                    ["sagas_workflow_created"], true
                ),
                ("outbox claim", SagaStore.outboxClaimQuery(limit: 100), ["outbox_unpublished"], false),
                (
                    // A retention sweep when none is old enough yet: what it costs every interval.
                    "retention batch",
                    SagaStore.retentionQuery(finishedBefore: Fixture.epoch - .minutes(60 * 24 * 31), scope: .allExcept([]), limit: 500),
                    ["sagas_status_created", "sagas_created"], false
                ),
                (
                    // The table holds live timers only (two per running saga): small enough that the
                    // planner reads it whole; timers_claimable serves it once it grows.
                    "timer claim",
                    SagaStore.timerClaimQuery(now: now, limit: 100, leaseExpires: now + .seconds(30), token: UUID()),
                    ["timers"], false
                ),
            ]
            for check in checks {
                var explained = check.query
                explained.sql = "EXPLAIN (\(check.analyze ? "ANALYZE, BUFFERS, " : "")COSTS OFF) " + explained.sql
                var plan: [String] = []
                for try await line in try await store.client.query(explained).decode(String.self) { plan.append(line) }
                let text = plan.joined(separator: "\n")
                print("-- \(check.name)\n\(text)\n")
                #expect(
                    check.indexes.contains { text.contains($0) }, "\(check.name) uses none of \(check.indexes):\n\(text)")
                #expect(!text.contains("Seq Scan on sagas"), "\(check.name) scans every saga:\n\(text)")
                #expect(!text.contains("Seq Scan on outbox"), "\(check.name) scans the whole outbox:\n\(text)")
            }
        }
    }
}
