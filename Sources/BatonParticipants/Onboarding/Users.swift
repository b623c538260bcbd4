import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The users participant (onboarding): registers a user, one active registration per email; a
/// rejected KYC check compensates the registration by marking it deregistered, which frees the
/// email.
public struct Users: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "users.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "users", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS users.users (
                    id             text        PRIMARY KEY,
                    email          text        NOT NULL,
                    name           text        NOT NULL,
                    status         text        NOT NULL CHECK (status IN ('registered', 'deregistered')),
                    saga_id        text        NOT NULL,
                    registered_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE UNIQUE INDEX IF NOT EXISTS users_active_email ON users.users (lower(email)) WHERE status = 'registered'",
            ])
    }

    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("register", barrier: barrier) { context, connection in try await register(context, connection) }
        // Onboarding v3 names no user: a saga registers one user at most, so the registration is
        // found by the saga (when registering timed out, the user's id was never seen). v2 named it.
        handlers.compensation("deregister", barrier: barrier) { context, connection in
            let rows: PostgresRowSequence
            if let id = context.payload.value(at: ["user_id"])?.stringValue, !id.isEmpty {
                rows = try await connection.run(
                    "UPDATE users.users SET status = 'deregistered' WHERE id = \(id) RETURNING id", logger: logger)
            } else {
                rows = try await connection.run(
                    """
                    UPDATE users.users SET status = 'deregistered'
                    WHERE saga_id = \(context.command.sagaID) AND status = 'registered' RETURNING id
                    """, logger: logger)
            }
            var withdrawn: String?
            for try await id in rows.decode(String.self) { withdrawn = id }
            context.logger.notice("registration withdrawn", metadata: ["user.id": "\(withdrawn ?? "none")"])
            return ["user_id": withdrawn.map(JSONValue.string) ?? .null, "status": "deregistered"]
        }
        return handlers
    }

    func register(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        guard let email = context.payload.value(at: ["email"])?.stringValue, email.contains("@") else {
            throw BusinessFailure(code: "invalid_email", message: "\"email\" must be an email address")
        }
        guard let name = context.payload.value(at: ["name"])?.stringValue, !name.isEmpty else {
            throw BusinessFailure(code: "invalid_request", message: "\"name\" is required")
        }
        let id = EntityID.make("usr", digits: 16)
        let rows = try await connection.run(
            """
            INSERT INTO users.users (id, email, name, status, saga_id)
            VALUES (\(String(id)), \(email), \(name), 'registered', \(context.command.sagaID))
            ON CONFLICT (lower(email)) WHERE status = 'registered' DO NOTHING RETURNING id
            """, logger: logger)
        var inserted = false
        for try await _ in rows { inserted = true }
        guard inserted else { throw BusinessFailure(code: "email_taken", message: "\(email) is already registered") }
        context.logger.info("user registered", metadata: ["user.id": "\(id)"])
        return ["user_id": .string(String(id))]
    }

    /// A user's status, or `nil` when there is no such user.
    public func status(of id: String) async throws -> String? {
        for try await status in try await client.checkedQuery("SELECT status FROM users.users WHERE id = \(id)", logger: logger).decode(
            String.self)
        {
            return status
        }
        return nil
    }
}
