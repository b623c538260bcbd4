import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import PostgresNIO

/// "Exactly once in effect" for a participant with a PostgreSQL database.
///
/// The handler runs in a transaction on the participant's own database; its writes and the
/// barrier's record of the result commit together. For each leg of a saga (a saga's step), with
/// the action and its compensation taking turns under one lock:
/// - a repeated command (a redelivery, or another attempt) returns the recorded result without
///   running again;
/// - a compensation whose action never took effect (it never arrived, or failed) records itself
///   and succeeds with nothing to undo: a null compensation;
/// - an action that arrives after its compensation is refused (`failed`, code `compensated`) and
///   does nothing: hanging prevention.
///
/// A ``BusinessFailure`` thrown by the handler undoes the handler's writes (to a savepoint) and
/// records `failed` for its attempt: that attempt and every earlier one get it (a late copy must
/// not take effect after the engine settled the step as failed), while a later attempt (a retry
/// after the pivot, an operator's retry) runs afresh. Any other error rolls everything back, so
/// the next attempt runs afresh too. (`docs/protocol.md`, "The
/// idempotency barrier", states these rules for every SDK.)
public struct IdempotencyBarrier: Sendable {
    public let client: PostgresClient
    /// The barrier's table, in the participant's database.
    public let table: String
    let logger: Logger

    /// - Parameters:
    ///   - client: A running client for the participant's database.
    ///   - table: A plain identifier, optionally schema-qualified (`ledger.baton_barrier`).
    public init(client: PostgresClient, table: String = "baton_barrier", logger: Logger) {
        precondition(table.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }, "invalid table name \(table)")
        self.client = client
        self.table = table
        self.logger = logger
    }

    /// Creates the barrier's table if it is missing (safe when several processes start at once).
    public func prepare() async throws {
        try await client.withStoreTransaction(logger: logger) { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(hashtextextended(\(table), 0))", logger: logger)
            try await connection.run(
                """
                CREATE TABLE IF NOT EXISTS \(unescaped: table) (
                    saga_id          text        NOT NULL,
                    step             text        NOT NULL,
                    direction        text        NOT NULL CHECK (direction IN ('action', 'compensation')),
                    idempotency_key  text        NOT NULL,
                    attempt          integer     NOT NULL,
                    outcome          text        NOT NULL
                        CHECK (outcome IN ('succeeded', 'failed', 'null_compensation', 'refused')),
                    reply            jsonb       NOT NULL,
                    recorded_at      timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (saga_id, step, direction)
                )
                """,
                logger: logger
            )
        }
    }

    /// Runs `body` at most once in effect for the command's idempotency key, and returns the reply.
    /// - Throws: ``RetryLater`` or any other error from `body` (nothing was recorded); database
    ///   errors.
    public func run(
        _ context: HandlerContext,
        _ body: (HandlerContext, PostgresConnection) async throws -> JSONValue
    ) async throws -> ReplyStatus {
        let command = context.command
        return try await client.withStoreTransaction(logger: logger) { connection in
            // One leg at a time: an action and its compensation never decide concurrently.
            try await connection.run(
                "SELECT pg_advisory_xact_lock(hashtextextended(\(command.sagaID + "/" + command.step), 0))", logger: logger)
            var recorded: [StepDirection: (outcome: String, attempt: Int, reply: JSONValue)] = [:]
            let rows = try await connection.run(
                """
                SELECT direction, outcome, attempt, reply FROM \(unescaped: table)
                WHERE saga_id = \(command.sagaID) AND step = \(command.step)
                """,
                logger: logger)
            for try await (direction, outcome, attempt, reply) in rows.decode((String, String, Int, String).self) {
                guard let direction = StepDirection(rawValue: direction) else { continue }
                let body = (try? JSONDecoder().decode(JSONValue.self, from: Data(reply.utf8))) ?? .null
                recorded[direction] = (outcome, attempt, body)
            }

            // A recorded `failed` answers its attempt and every earlier one (a late copy of an
            // earlier attempt must not take effect after the engine settled the step as failed);
            // a later attempt, which the engine sends only to retry on purpose (after the pivot, an
            // operator's retry), runs afresh.
            if let mine = recorded[command.direction], mine.outcome != "failed" || command.attempt <= mine.attempt {
                context.logger.info("repeated command: returning the recorded result", metadata: ["barrier.outcome": "\(mine.outcome)"])
                return try ReplyBody.decode(mine.reply)
            }
            switch command.direction {
            case .action where recorded[.compensation] != nil:
                let status = ReplyStatus.failed(
                    code: "compensated",
                    message: "step \(command.step) of saga \(command.sagaID) was already compensated: the action must not take effect")
                context.logger.notice("action refused: its compensation came first")
                try await record(command, outcome: "refused", status, on: connection)
                return status
            case .compensation where recorded[.action]?.outcome != "succeeded":
                let status = ReplyStatus.succeeded(output: .null)
                context.logger.notice("null compensation: the action never took effect")
                try await record(command, outcome: "null_compensation", status, on: connection)
                return status
            default:
                break
            }

            try await connection.run("SAVEPOINT baton_handler", logger: logger)
            let output: JSONValue
            do {
                output = try await body(context, connection)
                try await connection.run("RELEASE SAVEPOINT baton_handler", logger: logger)
            } catch let failure as BusinessFailure {
                // A business failure has no effect: drop the handler's writes, keep the answer for
                // this attempt and the earlier ones.
                try await connection.run("ROLLBACK TO SAVEPOINT baton_handler", logger: logger)
                let status = ReplyStatus.failed(code: failure.code, message: failure.message)
                try await record(command, outcome: "failed", status, on: connection)
                return status
            }
            let status = ReplyStatus.succeeded(output: output)
            try await record(command, outcome: "succeeded", status, on: connection)
            return status
        }
    }

    private func record(
        _ command: CommandMessage, outcome: String, _ status: ReplyStatus, on connection: PostgresConnection
    )
        async throws
    {
        try await connection.run(
            """
            INSERT INTO \(unescaped: table) (saga_id, step, direction, idempotency_key, attempt, outcome, reply)
            VALUES (\(command.sagaID), \(command.step), \(command.direction.rawValue), \(command.idempotencyKey),
                \(command.attempt), \(outcome), \(ReplyBody.encode(status).canonicalJSON)::jsonb)
            ON CONFLICT (saga_id, step, direction) DO UPDATE
                SET attempt = excluded.attempt, outcome = excluded.outcome, reply = excluded.reply, recorded_at = now()
            """,
            logger: logger
        )
    }
}

extension WorkerHandlers {
    /// Handles the action `action` behind `barrier`: `body` runs in the barrier's transaction, at
    /// most once in effect per idempotency key.
    public mutating func action(
        _ action: String,
        barrier: IdempotencyBarrier,
        _ body: @escaping @Sendable (HandlerContext, PostgresConnection) async throws -> JSONValue
    ) {
        register(action, direction: .action, Self.behind(barrier, body))
    }

    /// Handles the compensation `action` behind `barrier`.
    public mutating func compensation(
        _ action: String,
        barrier: IdempotencyBarrier,
        _ body: @escaping @Sendable (HandlerContext, PostgresConnection) async throws -> JSONValue
    ) {
        register(action, direction: .compensation, Self.behind(barrier, body))
    }

    static func behind(
        _ barrier: IdempotencyBarrier,
        _ body: @escaping @Sendable (HandlerContext, PostgresConnection) async throws -> JSONValue
    ) -> Handler {
        { context in
            do {
                return try await barrier.run(context, body)
            } catch let retry as RetryLater {
                return .retry(after: retry.after, message: retry.message)
            }
        }
    }
}
