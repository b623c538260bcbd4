import BatonStore
import Foundation
import Logging
import PostgresNIO

/// The database's share of a saga-step, alone: `pgbench` replaying, in plain SQL, the rows one
/// step writes in Baton's own schema, with no orchestrator, broker, worker or HTTP in the way.
///
/// One pgbench transaction is one step of a saga in flight, as the reply that ends it and the
/// command that starts the next leave the tables: the saga row locked and read, its steps read,
/// the reply's inbox row, the saga row and two step rows updated, two history rows, the finished
/// step's timeout timer deleted and the next one's inserted, the next command's outbox row, the
/// commit, then the outbox row marked published in a transaction of its own. Statements are
/// prepared (`-M prepared`), so nothing is parsed or planned twice.
///
/// Its tps is an upper bound on Baton's saga-steps/s on this server that no engine work can
/// raise: the rows are what makes a step durable, recoverable and auditable. Baton writes the same
/// rows in fewer statements (batched, through JSON row sets), so it can come near this bound but
/// only by spending its own CPU on the same cores.
enum StepFloor {
    /// Sagas in flight the transactions pick from at random (few enough to stay in memory, enough
    /// that 16 clients seldom wait for one another's row locks).
    static let sagas = 10_000

    struct Figures: Codable {
        var tps: Double
        /// PostgreSQL's CPU per step (all its processes), in milliseconds.
        var postgresCPUMilliseconds: Double
    }

    /// Makes the database `url` names (Baton's schema, `sagas` sagas in flight), then runs the
    /// script with `clients` clients, `transactions` each.
    static func run(
        url: DatabaseURL, admin: PostgresClient, clients: Int, transactions: Int, directory: URL, logger: Logger
    )
        async throws -> Figures
    {
        try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(url.database) WITH (FORCE)"))
        try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(url.database)"))
        try await BenchCommand.Run.withClient(url, logger: logger) { client in
            try await SagaStore(client: client, logger: logger).migrate()
            for statement in setup { try await client.query(statement) }
        }
        let script = directory.appending(path: "step-floor.sql")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        let before = CPUAccounting.postgresSeconds()
        let tps = try PGBench.tps(
            url: url, clients: clients, transactions: transactions, workload: ["-M", "prepared", "-f", script.path],
            log: directory.appending(path: "pgbench.log"))
        let spent = CPUAccounting.postgresSeconds() - before
        return Figures(tps: tps, postgresCPUMilliseconds: spent * 1000 / Double(clients * transactions))
    }

    static let setup: [PostgresQuery] = [
        """
        INSERT INTO baton.workflow_definitions (name, version, content_hash, definition, registered_at)
        VALUES ('floor', 1, 'floor', '{}', now())
        """,
        """
        INSERT INTO baton.sagas (
            id, workflow, workflow_version, workflow_hash, status, direction, position, current_step, input, correlation_id,
            attempts, retries, awaiting_reply_since, history_length, revision, created_at, updated_at)
        SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'floor', 1, 'floor', 'PROCESSING', 'action', 0,
            'step-a', jsonb_build_object('n', i), 'floor-' || i, 1, 0, now(), 2, 2, now(), now()
        FROM generate_series(1, \(sagas)) AS i
        """,
        """
        INSERT INTO baton.saga_steps (
            saga_id, position, name, status, attempt, compensation_attempt, attempt_budget_start, compensation_budget_start,
            outcome_unknown, command_sent_at, started_at)
        SELECT s.id, p, 'step-' || chr(97 + p), CASE WHEN p = 0 THEN 'RUNNING' ELSE 'PENDING' END, CASE WHEN p = 0 THEN 1 ELSE 0 END,
            0, 0, 0, false, now(), now()
        FROM baton.sagas s, generate_series(0, 2) AS p
        """,
        "VACUUM ANALYZE",
    ]

    /// One saga-step. `:s` picks the saga, `:finished` which of its two first steps finishes (the
    /// other starts), so every row stays the size a live saga's has. The saga's update and its
    /// history rows are one statement, as in Baton.
    /// No literal holds a colon before a letter: pgbench would take it for a variable, so the keys
    /// use `|` where Baton's use `:`, at the same length.
    static let script = #"""
        \set s random(1, \#(sagas))
        \set finished random(0, 1)
        BEGIN;
        SELECT revision, status, position, history_length FROM baton.sagas
            WHERE id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid FOR UPDATE;
        SELECT position, status, attempt, output FROM baton.saga_steps
            WHERE saga_id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid ORDER BY position;
        INSERT INTO baton.inbox (message_id, saga_id, received_at)
            VALUES (gen_random_uuid()::text, ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid, now());
        UPDATE baton.saga_steps SET status = 'SUCCEEDED', output = '{"ok": true, "reference": "r-1"}', reply_deadline = NULL,
                finished_at = now()
            WHERE saga_id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid AND position = :finished;
        UPDATE baton.saga_steps SET status = 'RUNNING', attempt = attempt + 1, command_sent_at = now(), started_at = now(),
                reply_deadline = now() + interval '30 seconds'
            WHERE saga_id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid AND position = 1 - :finished;
        WITH saga AS (
            UPDATE baton.sagas SET position = 1 - position, current_step = CASE WHEN position = 0 THEN 'step-b' ELSE 'step-a' END,
                    attempts = attempts + 1, awaiting_reply_since = now(), history_length = history_length + 2,
                    revision = revision + 1, updated_at = now()
                WHERE id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid
                RETURNING id, history_length)
        INSERT INTO baton.saga_history (saga_id, seq, kind, step, direction, attempt, status_before, status_after, detail, at)
            SELECT id, history_length - 1, 'step_succeeded', 'step-a', 'action', 1, 'PROCESSING', 'PROCESSING', 'step succeeded', now()
            FROM saga
            UNION ALL
            SELECT id, history_length, 'command_sent', 'step-b', 'action', 1, 'PROCESSING', 'PROCESSING', 'command sent', now()
            FROM saga;
        DELETE FROM baton.timers
            WHERE saga_id = ('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid AND timer_key = 'step_timeout|step-b|action';
        INSERT INTO baton.timers (saga_id, timer_key, kind, step, direction, attempt, due_at, claimable_at)
            VALUES (('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid, 'step_timeout|step-b|action', 'step_timeout',
                'step-b', 'action', 1, now() + interval '30 seconds', now() + interval '30 seconds');
        INSERT INTO baton.outbox (saga_id, command, created_at)
            VALUES (('00000000-0000-0000-0000-' || lpad(:s::text, 12, '0'))::uuid,
                '{"sagaID": "00000000-0000-0000-0000-000000000001", "step": "step-b", "participant": "bench-b", "action": "run", "direction": "action", "attempt": 1, "idempotencyKey": "00000000-0000-0000-0000-000000000001|step-b|action", "deadline": 1764547200000000, "payload": {"n": 1, "fail": false}, "workflow": "floor", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}',
                now())
            RETURNING id AS command \gset
        COMMIT;
        UPDATE baton.outbox SET published_at = now() WHERE id = :command AND published_at IS NULL;
        """#
}
