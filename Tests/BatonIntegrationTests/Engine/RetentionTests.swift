import BatonCore
import Foundation
import Logging
import PostgresNIO
import Prometheus
import Testing

@testable import BatonEngine
@testable import BatonStore

/// Retention against the real PostgreSQL: which finished sagas go, with which rows, in bounded
/// batches, archived first when asked.
@Suite("Retention")
struct RetentionTests {
    typealias Fixture = StoreFixture
    static let logger = Logger(label: "baton.test.retention")
    static let now = Fixture.epoch

    /// Adds `count` sagas of `workflow` created and finished `age` ago (or still running), each
    /// with three steps, eight history entries, three inbox records and three published outbox
    /// rows, as a real saga leaves them. - Returns: their ids.
    @discardableResult
    static func seed(
        _ store: SagaStore, workflow: String = "store-test", count: Int, status: String = "COMPLETED", age: TimeInterval,
        parent: UUID? = nil, tag: String
    ) async throws -> [UUID] {
        let created = now.addingTimeInterval(-age)
        let finished: Date? = ["COMPLETED", "FAILED"].contains(status) ? created.addingTimeInterval(2) : nil
        let hash = try await Fixture.scalar(
            store, "SELECT content_hash FROM baton.workflow_definitions WHERE name = \(workflow)", as: String.self)
        var ids: [UUID] = []
        let rows = try await store.client.query(
            """
            INSERT INTO baton.sagas (
                id, workflow, workflow_version, workflow_hash, status, direction, position, current_step, input, correlation_id,
                attempts, retries, history_length, revision, created_at, updated_at, finished_at, parent_saga_id, parent_step, parent_depth)
            SELECT gen_random_uuid(), \(workflow), 1, \(hash), \(status), 'action', 2, 'notify', '{"amount": 1}'::jsonb,
                \(tag) || '-' || i, 3, 0, 8, 8, \(created), \(finished ?? created), \(finished), \(parent),
                CASE WHEN \(parent)::uuid IS NULL THEN NULL ELSE 'child' END, CASE WHEN \(parent)::uuid IS NULL THEN NULL ELSE 1 END
            FROM generate_series(1, \(count)) AS i
            RETURNING id
            """)
        for try await id in rows.decode(UUID.self) { ids.append(id) }
        try await store.client.query(
            """
            INSERT INTO baton.saga_steps (
                saga_id, position, name, status, attempt, compensation_attempt, attempt_budget_start, compensation_budget_start,
                outcome_unknown)
            SELECT id, p, 'step-' || p, 'SUCCEEDED', 1, 0, 0, 0, false FROM unnest(\(ids)::uuid[]) AS id, generate_series(0, 2) AS p
            """)
        try await store.client.query(
            """
            INSERT INTO baton.saga_history (saga_id, seq, kind, status_before, status_after, detail, at)
            SELECT id, k, 'seeded', 'PROCESSING', 'PROCESSING', 'seeded', \(created)
            FROM unnest(\(ids)::uuid[]) AS id, generate_series(1, 8) AS k
            """)
        try await store.client.query(
            """
            INSERT INTO baton.inbox (message_id, saga_id, received_at)
            SELECT id || '-' || k, id, \(finished ?? created) FROM unnest(\(ids)::uuid[]) AS id, generate_series(1, 3) AS k
            """)
        try await store.client.query(
            """
            INSERT INTO baton.outbox (saga_id, command, created_at, published_at)
            SELECT id, '{}'::jsonb, \(created), \(created)
            FROM unnest(\(ids)::uuid[]) AS id, generate_series(1, 3) AS k
            """)
        return ids
    }

    static func count(_ store: SagaStore, _ sql: PostgresQuery) async throws -> Int {
        try await Fixture.scalar(store, sql, as: Int.self) ?? -1
    }

    static func register(_ name: String, in store: SagaStore) async throws {
        let source = Fixture.definitionSource.replacingOccurrences(of: "name: store-test", with: "name: \(name)")
        try await store.registerDefinition(try WorkflowDefinition.parse(source, format: .yaml), source: source, now: now)
    }

    static let day: TimeInterval = 86_400

    @Test("a sweep removes what each rule lets go, with its steps, history and message records, and keeps the rest")
    func sweepKeepsWhatTheRulesKeep() async throws {
        try await Fixture.withStore { store in
            for name in ["ledger-audit", "quick"] { try await Self.register(name, in: store) }
            let old = try await Self.seed(store, count: 23, age: 40 * Self.day, tag: "old")
            let oldFailed = try await Self.seed(store, count: 5, status: "FAILED", age: 40 * Self.day, tag: "old-failed")
            let young = try await Self.seed(store, count: 4, age: 10 * Self.day, tag: "young")
            let running = try await Self.seed(store, count: 3, status: "PROCESSING", age: 40 * Self.day, tag: "running")
            let suspended = try await Self.seed(store, count: 2, status: "SUSPENDED", age: 40 * Self.day, tag: "suspended")
            let kept = try await Self.seed(store, workflow: "ledger-audit", count: 3, age: 300 * Self.day, tag: "audit")
            let quick = try await Self.seed(store, workflow: "quick", count: 6, age: 2 * Self.day, tag: "quick")
            // A finished parent whose child still runs stays until the child is done.
            let parent = try await Self.seed(store, count: 1, age: 40 * Self.day, tag: "parent")
            let child = try await Self.seed(store, count: 1, status: "PROCESSING", age: 40 * Self.day, parent: parent[0], tag: "child")

            var policy = try RetentionPolicy(parsing: "30d, ledger-audit=forever, quick=1d")
            policy.batchSize = 7
            let registry = PrometheusCollectorRegistry()
            var sweeper = RetentionSweeper(
                store: store, policy: policy, metrics: EngineMetrics(factory: PrometheusMetricsFactory(registry: registry)),
                logger: Self.logger)
            sweeper.restRatio = 0
            let removed = try await sweeper.sweep(now: Self.now)
            #expect(removed == old.count + oldFailed.count + quick.count)

            let remaining = Set(
                try await store.client.query("SELECT id FROM baton.sagas").decode(UUID.self).reduce(into: []) { $0.append($1) })
            #expect(remaining == Set(young + running + suspended + kept + parent + child))
            for table in ["saga_steps", "saga_history"] {
                let orphans = try await Self.count(
                    store,
                    "SELECT count(*) FROM \(unescaped: "baton." + table) t WHERE NOT EXISTS (SELECT 1 FROM baton.sagas s WHERE s.id = t.saga_id)"
                )
                #expect(orphans == 0, "\(table) keeps rows of removed sagas")
            }
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.saga_steps") == remaining.count * 3)
            // Message records go by age: the shortest rule (1d) bounds them, so every record older
            // than a day goes, whoever's saga it was; the young sagas' (10 days) too.
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.inbox") == 0)
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.outbox") == 0)

            let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            #expect(text.contains(#"baton_retention_sagas_removed_total{workflow="store-test"} 28"#))
            #expect(text.contains(#"baton_retention_sagas_removed_total{workflow="quick"} 6"#))
            #expect(text.contains(#"baton_retention_records_removed_total{table="inbox"}"#))
            #expect(!text.contains("baton_retention_sagas_archived_total"))

            // Nothing more to do: a second sweep removes nothing.
            #expect(try await sweeper.sweep(now: Self.now) == 0)
            // Once the child finishes, its parent goes on the next sweep (the child is young).
            try await store.client.query(
                "UPDATE baton.sagas SET status = 'COMPLETED', finished_at = \(Self.now) WHERE id = \(child[0])")
            #expect(try await sweeper.sweep(now: Self.now) == 1)
        }
    }

    @Test("with an archive, each removed saga is written first, with its steps and history; a failing archive removes nothing")
    func archiveFirst() async throws {
        try await Fixture.withStore { store in
            let old = try await Self.seed(store, count: 12, age: 40 * Self.day, tag: "old")
            let directory = FileManager.default.temporaryDirectory.appending(path: "baton-archive-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }

            // An archive that cannot take the batch: the transaction rolls back, the sagas stay.
            await #expect(throws: ArchiveError.self) {
                try await store.removeFinishedSagas(
                    finishedBefore: Self.now, scope: .allExcept([]), limit: 5,
                    archive: { _ in throw ArchiveError(description: "disk full") })
            }
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.sagas") == old.count)

            var policy = try RetentionPolicy(parsing: "30d")
            policy.batchSize = 5
            policy.archive = directory
            try SagaArchive(directory: directory).prepare()
            var sweeper = RetentionSweeper(store: store, policy: policy, logger: Self.logger)
            sweeper.restRatio = 0
            #expect(try await sweeper.sweep(now: Self.now) == old.count)
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.sagas") == 0)

            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            #expect(files.count == 1)
            #expect(files.allSatisfy { $0.hasPrefix("sagas-") && $0.hasSuffix(".jsonl") })
            let lines = try String(contentsOf: directory.appending(path: files[0]), encoding: .utf8).split(separator: "\n")
            #expect(lines.count == old.count)
            var archived: Set<String> = []
            for line in lines {
                let document = try JSONParser.parse(String(line))
                guard case .string(let id)? = document.value(at: ["saga", "id"]) else {
                    Issue.record("an archived line without saga.id: \(line.prefix(200))")
                    continue
                }
                archived.insert(id)
                if case .array(let steps)? = document.value(at: ["steps"]) { #expect(steps.count == 3) } else { Issue.record("no steps") }
                if case .array(let history)? = document.value(at: ["history"]) {
                    #expect(history.count == 8)
                } else {
                    Issue.record("no history")
                }
                #expect(document.value(at: ["saga", "status"]) == .string("COMPLETED"))
            }
            #expect(archived == Set(old.map(\.sagaID)))
        }
    }

    @Test("a large backlog drains in batches no larger than asked; a batch reads indexes, not the whole table")
    func largeBacklogInBoundedBatches() async throws {
        try await Fixture.withStore { store in
            let total = 20_000
            try await Self.seed(store, count: total, age: 60 * Self.day, tag: "bulk")
            let live = try await Self.seed(store, count: 50, status: "PROCESSING", age: 60 * Self.day, tag: "live")
            try await store.client.query("VACUUM ANALYZE baton.sagas")

            // Planned as a sweep finds it most often: nothing, or little, old enough. The candidates
            // come from an index bounded by the cutoff, and the delete goes by primary key.
            for scope in [RetentionScope.allExcept(["ledger-audit"]), .workflow("store-test")] {
                var plan: [String] = []
                var explained = SagaStore.retentionQuery(
                    finishedBefore: Self.now.addingTimeInterval(-90 * Self.day), scope: scope, limit: 500)
                explained.sql = "EXPLAIN (COSTS OFF) " + explained.sql
                for try await line in try await store.client.query(explained).decode(String.self) { plan.append(line) }
                let text = plan.joined(separator: "\n")
                let bounded = ["sagas_status_created", "sagas_workflow_created", "sagas_created"].contains { text.contains($0) }
                #expect(bounded, "\(scope) reads no index bounded by created_at:\n\(text)")
                #expect(!text.contains("Seq Scan on sagas"), "a retention batch scans every saga:\n\(text)")
            }

            var batches = 0
            while true {
                let removed = try await store.removeFinishedSagas(
                    finishedBefore: Self.now.addingTimeInterval(-30 * Self.day), scope: .allExcept([]), limit: 500)
                let count = removed.values.reduce(0, +)
                #expect(count <= 500)
                if count == 0 { break }
                batches += 1
            }
            #expect(batches == total / 500)
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.sagas") == live.count)
            #expect(try await Self.count(store, "SELECT count(*) FROM baton.saga_history") == live.count * 8)
        }
    }
}

@Suite("Retention policy")
struct RetentionPolicyTests {
    @Test("rules read: one age for all, ages by workflow, forever")
    func parsing() throws {
        let policy = try RetentionPolicy(parsing: "30d, funds-transfer=365d ,audit=forever")
        #expect(policy.standard == .after(SagaDuration(milliseconds: 30 * 86_400_000)))
        #expect(policy.workflows["funds-transfer"] == .after(SagaDuration(milliseconds: 365 * 86_400_000)))
        #expect(policy.workflows["audit"] == .forever)
        #expect(policy.isActive)
        #expect(policy.messageAge == RetentionPolicy.messageAgeLimit)
        #expect(try RetentionPolicy(parsing: "greet=1h").messageAge == SagaDuration(milliseconds: 3_600_000))
        #expect(try RetentionPolicy(parsing: "greet=1h").standard == .forever)
        #expect(try !RetentionPolicy(parsing: "forever").isActive)
        #expect(try !RetentionPolicy(parsing: "forever,greet=forever").isActive)
        #expect(try RetentionPolicy(parsing: "forever").messageAge == nil)
        #expect(policy.description == "30d,audit=forever,funds-transfer=365d")
    }

    @Test(
        "each mistake is named",
        arguments: [
            ("30", "not an age"), ("30x", "not an age"), ("30s", "shorter than a minute"), ("400d", "longer than the maximum"),
            ("30d,,greet=1d", "an empty rule"), ("30d,1d", "two rules without a workflow name"), ("greet=1d,greet=2d", "two rules"),
            ("bad name=1d", "is not a workflow name"), ("=1d", "is not a workflow name"), ("greet=", "not an age"),
        ])
    func mistakes(text: String, message: String) {
        #expect {
            try RetentionPolicy(parsing: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test("the rules of a sweep: named workflows first, then every other one")
    func rules() throws {
        let policy = try RetentionPolicy(parsing: "30d,b=1d,a=2d,c=forever")
        let rules = policy.rules(now: Date(timeIntervalSince1970: 100 * 86_400))
        #expect(rules.map(\.scope) == [.workflow("a"), .workflow("b"), .allExcept(["a", "b", "c"])])
        let days: [Int] = rules.map { Int($0.cutoff.timeIntervalSince1970) / 86_400 }
        #expect(days == [98, 99, 70])
    }
}
