import BatonClient
import BatonCore
import Foundation
import PostgresNIO

/// Fills the tables with finished sagas, as months of traffic would: each with its three steps,
/// eight history entries, three published outbox rows and three inbox records.
enum Preload {
    static func finishedSagas(_ count: Int, into database: PostgresClient) async throws {
        let statements: [PostgresQuery] = [
            """
            INSERT INTO baton.sagas (
                id, workflow, workflow_version, workflow_hash, status, direction, position, current_step, input, correlation_id,
                attempts, retries, history_length, revision, created_at, updated_at, finished_at)
            SELECT gen_random_uuid(), 'bench-3', 1, (SELECT content_hash FROM baton.workflow_definitions WHERE name = 'bench-3'),
                CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, CASE WHEN i % 10 = 0 THEN 'compensation' ELSE 'action' END,
                CASE WHEN i % 10 = 0 THEN 0 ELSE 2 END, CASE WHEN i % 10 = 0 THEN 'step-a' ELSE 'step-c' END,
                jsonb_build_object('n', i, 'fail', i % 10 = 0), 'preload-' || i, 3, 0, 8, 8, ts, ts + interval '40 ms',
                ts + interval '40 ms'
            FROM generate_series(1, \(count)) AS i, LATERAL (SELECT now() - interval '60 days' + i * interval '2 seconds' AS ts) t
            """,
            """
            INSERT INTO baton.saga_steps (
                saga_id, position, name, status, attempt, compensation_attempt, attempt_budget_start, compensation_budget_start,
                output, outcome_unknown, command_sent_at, started_at, finished_at)
            SELECT s.id, p, 'step-' || chr(97 + p), 'SUCCEEDED', 1, 0, 0, 0, '{}'::jsonb, false, s.created_at, s.created_at,
                s.finished_at
            FROM baton.sagas s, generate_series(0, 2) AS p WHERE s.correlation_id LIKE 'preload-%'
            """,
            """
            INSERT INTO baton.saga_history (saga_id, seq, kind, step, direction, attempt, status_before, status_after, detail, at)
            SELECT s.id, k, CASE WHEN k = 1 THEN 'saga_started' WHEN k = 8 THEN 'saga_completed'
                    WHEN k % 2 = 0 THEN 'command_sent' ELSE 'step_succeeded' END,
                'step-' || chr(97 + (k - 1) / 3), 'action', 1, 'PROCESSING', 'PROCESSING', 'preloaded', s.created_at
            FROM baton.sagas s, generate_series(1, 8) AS k WHERE s.correlation_id LIKE 'preload-%'
            """,
            """
            INSERT INTO baton.outbox (saga_id, command, created_at, published_at)
            SELECT s.id, '{}'::jsonb, s.created_at, s.created_at
            FROM baton.sagas s, generate_series(1, 3) AS p WHERE s.correlation_id LIKE 'preload-%'
            """,
            """
            INSERT INTO baton.inbox (message_id, saga_id, received_at)
            SELECT s.id || '-' || p, s.id, s.finished_at
            FROM baton.sagas s, generate_series(1, 3) AS p WHERE s.correlation_id LIKE 'preload-%'
            """,
            "VACUUM ANALYZE baton.sagas",
            "VACUUM ANALYZE baton.saga_steps",
            "VACUUM ANALYZE baton.saga_history",
            "VACUUM ANALYZE baton.outbox",
            "VACUUM ANALYZE baton.inbox",
            // Written out now, not by the checkpointer during the phase that follows: the
            // preload's own writes must not be charged to the scaled phase. (Needs a superuser or
            // pg_checkpoint; scripts/services makes the bench's user one.)
            "CHECKPOINT",
        ]
        for statement in statements { try await database.query(statement) }
    }
}

/// What the timer storm measured.
struct StormFigures: Codable {
    var timers: Int
    var drainSeconds: Double
    var rssInFlightMiB: Double?
    var peakRSSMiB: Double

    var line: String {
        String(
            format:
                "timer storm: %d timers due at once drained in %.1f s (%.0f timers/s); baton serve RSS %@ with them in flight, peak %.1f MiB",
            timers, drainSeconds, Double(timers) / drainSeconds, rssInFlightMiB.map { String(format: "%.1f MiB", $0) } ?? "n/a",
            peakRSSMiB)
    }
}

/// `timers` sagas wait on a step whose participant is stopped (a one-hour timeout); then every
/// timeout is made due at once, and the scheduler's time to fire them all is measured.
enum TimerStorm {
    static func run(
        timers: Int, api: BatonClient, database: PostgresClient, serve: ChildProcess, concurrency: Int
    ) async throws
        -> StormFigures
    {
        print("baton-bench: timer storm: starting \(timers) sagas that wait (no workers)")
        let memory = PeakMemory()
        memory.start(serve)
        defer { memory.stop() }
        let next = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while let index = next.take(below: timers) {
                        let body: JSONValue = ["workflow": "bench-storm", "input": ["n": .integer(Int64(index)), "fail": false]]
                        _ = try await api.request(
                            "POST", "/v1/sagas", body: Data(body.canonicalJSON.utf8), headers: ["X-Correlation-ID": "storm-\(index)"])
                    }
                }
            }
            try await group.waitForAll()
        }
        // Every saga has sent its first command and holds a step-timeout timer.
        while try await scalar("SELECT count(*) FROM baton.outbox WHERE published_at IS NULL", database) > 0 {
            try await Task.sleep(for: .milliseconds(200))
        }
        let inFlight = try await scalar("SELECT count(*) FROM baton.sagas WHERE status = 'PROCESSING'", database)
        let rssInFlight = serve.residentBytes.map { Double($0) / 1_048_576 }

        print("baton-bench: timer storm: \(inFlight) sagas in flight; making \(timers) step timeouts due now")
        let started = ContinuousClock.now
        try await database.query(
            """
            WITH due AS (
                UPDATE baton.timers t SET due_at = now(), claimable_at = now()
                FROM baton.sagas s WHERE s.id = t.saga_id AND s.correlation_id LIKE 'storm-%' AND t.kind = 'step_timeout'
                RETURNING 1)
            SELECT pg_notify('baton_wakeup', 'timer 0'), (SELECT count(*) FROM due)
            """)
        while try await scalar(
            """
            SELECT count(*) FROM baton.timers t JOIN baton.sagas s ON s.id = t.saga_id
            WHERE s.correlation_id LIKE 'storm-%' AND t.kind = 'step_timeout' AND t.attempt = 1
            """, database) > 0
        {
            try await Task.sleep(for: .milliseconds(100))
        }
        let drained = ContinuousClock.now - started
        let seconds = Double(drained.components.seconds) + Double(drained.components.attoseconds) / 1e18
        return StormFigures(timers: timers, drainSeconds: seconds, rssInFlightMiB: rssInFlight, peakRSSMiB: memory.peakMiB)
    }

    static func scalar(_ query: PostgresQuery, _ database: PostgresClient) async throws -> Int {
        for try await value in try await database.query(query).decode(Int.self) { return value }
        return 0
    }
}

/// Hands out indexes below a limit to concurrent tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.withLock {
            guard value < limit else { return nil }
            defer { value += 1 }
            return value
        }
    }
}

/// What retention removed while the `sweeping` phase ran beside it.
struct RetentionFigures: Codable {
    var removedDuringPhase: Int
    var phaseSeconds: Double
    var left: Int

    var line: String {
        String(
            format: "retention: removed %d preloaded sagas (with their steps and history) during the phase, %.0f sagas/s; %d left",
            removedDuringPhase, Double(removedDuringPhase) / phaseSeconds, left)
    }

    static func preloadedLeft(_ database: PostgresClient) async throws -> Int {
        for try await count in try await database.query("SELECT count(*) FROM baton.sagas WHERE correlation_id LIKE 'preload-%'")
            .decode(Int.self)
        {
            return count
        }
        return 0
    }
}
