extension Migration {
    /// Version 1: definitions, sagas, steps, history, outbox, timers and the reply inbox.
    ///
    /// `docs/storage.md` explains every table and why each index exists.
    static let initialSchema = Migration(
        version: 1,
        name: "initial schema",
        statements: [
            // Timestamps inside JSON row sets travel as integer microseconds since the Unix epoch, so
            // none is rounded on the way in.
            """
            CREATE FUNCTION baton.from_epoch_us(us bigint) RETURNS timestamptz
                LANGUAGE sql IMMUTABLE PARALLEL SAFE
                RETURN 'epoch'::timestamptz + us * interval '1 microsecond'
            """,

            """
            CREATE TABLE baton.workflow_definitions (
                name           text        NOT NULL,
                version        integer     NOT NULL CHECK (version > 0),
                content_hash   text        NOT NULL,
                definition     jsonb       NOT NULL,
                source         text,
                registered_at  timestamptz NOT NULL,
                PRIMARY KEY (name, version)
            )
            """,

            // Updated on every transition: fillfactor leaves room on each page so that an update
            // which changes no indexed column stays a HOT update (no index writes).
            """
            CREATE TABLE baton.sagas (
                id                    uuid        PRIMARY KEY,
                workflow              text        NOT NULL,
                workflow_version      integer     NOT NULL,
                workflow_hash         text        NOT NULL,
                status                text        NOT NULL CHECK (status IN
                    ('PENDING', 'PROCESSING', 'COMPENSATING', 'SUSPENDED', 'COMPLETED', 'FAILED')),
                direction             text        NOT NULL CHECK (direction IN ('action', 'compensation')),
                position              integer     NOT NULL,
                current_step          text        NOT NULL,
                input                 jsonb       NOT NULL,
                correlation_id        text,
                idempotency_key       text,
                request_hash          text,
                deadline              timestamptz,
                suspension_reason     text,
                last_error            text,
                attempts              integer     NOT NULL,
                retries               integer     NOT NULL,
                awaiting_reply_since  timestamptz,
                history_length        integer     NOT NULL,
                revision              bigint      NOT NULL,
                created_at            timestamptz NOT NULL,
                updated_at            timestamptz NOT NULL,
                finished_at           timestamptz,
                FOREIGN KEY (workflow, workflow_version) REFERENCES baton.workflow_definitions (name, version),
                CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
            ) WITH (fillfactor = 85)
            """,
            """
            CREATE UNIQUE INDEX sagas_idempotency_key ON baton.sagas (idempotency_key)
                WHERE idempotency_key IS NOT NULL
            """,
            "CREATE INDEX sagas_created ON baton.sagas (created_at, id)",
            "CREATE INDEX sagas_status_created ON baton.sagas (status, created_at, id)",
            "CREATE INDEX sagas_workflow_created ON baton.sagas (workflow, created_at, id)",
            // Only sagas still in flight: stays small however many finished sagas the table holds.
            """
            CREATE INDEX sagas_active ON baton.sagas (created_at, id) INCLUDE (status)
                WHERE status IN ('PENDING', 'PROCESSING', 'COMPENSATING', 'SUSPENDED')
            """,

            """
            CREATE TABLE baton.saga_steps (
                saga_id                    uuid        NOT NULL REFERENCES baton.sagas (id) ON DELETE CASCADE,
                position                   integer     NOT NULL,
                name                       text        NOT NULL,
                status                     text        NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED',
                    'FAILED', 'TIMED_OUT', 'COMPENSATING', 'COMPENSATED', 'SKIPPED')),
                attempt                    integer     NOT NULL,
                compensation_attempt       integer     NOT NULL,
                attempt_budget_start       integer     NOT NULL,
                compensation_budget_start  integer     NOT NULL,
                output                     jsonb,
                error                      jsonb,
                reply_deadline             timestamptz,
                retry_at                   timestamptz,
                outcome_unknown            boolean     NOT NULL,
                command_sent_at            timestamptz,
                started_at                 timestamptz,
                finished_at                timestamptz,
                PRIMARY KEY (saga_id, position)
            ) WITH (fillfactor = 85)
            """,

            """
            CREATE TABLE baton.saga_history (
                saga_id        uuid        NOT NULL REFERENCES baton.sagas (id) ON DELETE CASCADE,
                seq            integer     NOT NULL CHECK (seq > 0),
                kind           text        NOT NULL,
                step           text,
                direction      text,
                attempt        integer,
                status_before  text        NOT NULL,
                status_after   text        NOT NULL,
                detail         text        NOT NULL,
                at             timestamptz NOT NULL,
                PRIMARY KEY (saga_id, seq)
            )
            """,
            // The history is evidence: rows are appended, never rewritten. (Deleting a whole saga,
            // which cascades, stays possible for retention.)
            """
            CREATE FUNCTION baton.refuse_history_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'baton.saga_history is append-only';
            END
            $$
            """,
            """
            CREATE TRIGGER saga_history_append_only BEFORE UPDATE ON baton.saga_history
                FOR EACH STATEMENT EXECUTE FUNCTION baton.refuse_history_update()
            """,

            // No foreign key to sagas: outbox rows are transient and pruned by id order, and a
            // foreign key would need one more index on the hottest insert path.
            """
            CREATE TABLE baton.outbox (
                id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                saga_id           uuid        NOT NULL,
                subject           text        NOT NULL,
                message_id        text        NOT NULL,
                command           jsonb       NOT NULL,
                created_at        timestamptz NOT NULL,
                published_at      timestamptz,
                publish_attempts  integer     NOT NULL DEFAULT 0,
                last_error        text
            )
            """,
            // Only unpublished rows: the relay's claim never walks the published history.
            "CREATE INDEX outbox_unpublished ON baton.outbox (id) WHERE published_at IS NULL",

            // Only live timers exist: a fired or cancelled timer is deleted, and a saga's timers go
            // when it finishes. `claimable_at` is `due_at` until a scheduler claims the timer, then
            // the end of that scheduler's lease.
            """
            CREATE TABLE baton.timers (
                saga_id       uuid        NOT NULL REFERENCES baton.sagas (id) ON DELETE CASCADE,
                timer_key     text        NOT NULL,
                kind          text        NOT NULL CHECK (kind IN ('step_timeout', 'retry_backoff', 'saga_deadline')),
                step          text,
                direction     text,
                attempt       integer     NOT NULL,
                due_at        timestamptz NOT NULL,
                claimable_at  timestamptz NOT NULL,
                claim_token   uuid,
                claims        integer     NOT NULL DEFAULT 0,
                PRIMARY KEY (saga_id, timer_key)
            )
            """,
            "CREATE INDEX timers_claimable ON baton.timers (claimable_at)",

            // Replies already applied, by message id: a redelivered reply is acknowledged without
            // touching its saga. Rows arrive in time order, so a BRIN index serves pruning at almost
            // no cost per insert.
            """
            CREATE TABLE baton.inbox (
                message_id   text        PRIMARY KEY,
                saga_id      uuid        NOT NULL,
                received_at  timestamptz NOT NULL
            )
            """,
            "CREATE INDEX inbox_received ON baton.inbox USING brin (received_at)",
        ]
    )
}
