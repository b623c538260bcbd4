import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The audit participant: an append-only record of every saga event it is sent, queryable by
/// saga id. Its table refuses updates and deletes.
public struct Audit: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "audit.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "audit", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS audit.events (
                    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    saga_id      text        NOT NULL,
                    event        text        NOT NULL,
                    payload      jsonb       NOT NULL,
                    recorded_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX IF NOT EXISTS events_saga ON audit.events (saga_id, seq)",
                """
                CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'audit.events is append-only'; END $$
                """,
                "DROP TRIGGER IF EXISTS events_append_only ON audit.events",
                """
                CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()
                """,
            ])
    }

    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("record", barrier: barrier) { context, connection in try await record(context, connection) }
        return handlers
    }

    public func record(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let saga = context.payload.value(at: ["saga_id"])?.stringValue ?? context.command.sagaID
        let event = context.payload.value(at: ["event"])?.stringValue ?? context.command.step
        let rows = try await connection.run(
            """
            INSERT INTO audit.events (saga_id, event, payload) VALUES (\(saga), \(event), \(context.payload.canonicalJSON)::jsonb)
            RETURNING seq
            """, logger: logger)
        var seq: Int64 = 0
        for try await value in rows.decode(Int64.self) { seq = value }
        return ["seq": .integer(seq)]
    }

    /// The events recorded for a saga, in order.
    public func events(sagaID: String) async throws -> [(event: String, payload: JSONValue)] {
        var events: [(event: String, payload: JSONValue)] = []
        let rows = try await client.checkedQuery(
            "SELECT event, payload::text FROM audit.events WHERE saga_id = \(sagaID) ORDER BY seq", logger: logger)
        for try await (event, payload) in rows.decode((String, String).self) {
            events.append((event, (try? JSONDecoder().decode(JSONValue.self, from: Data(payload.utf8))) ?? .null))
        }
        return events
    }
}
