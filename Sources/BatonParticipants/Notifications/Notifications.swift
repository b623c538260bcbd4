import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The notifications participant: renders a templated message and writes it to its outbox table
/// (and the log), from which a sender would deliver it. Sending is retriable and never
/// compensated: it runs after the pivot.
public struct Notifications: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    let logger: Logger

    /// The templates, by name; `{field}` is replaced by the payload's field.
    public static let templates: [String: String] = [
        "transfer-completed": "Your transfer {transfer_id} of {amount} {currency} has completed.",
        "transfer-failed": "Your transfer {transfer_id} of {amount} {currency} did not go through; nothing was taken.",
        "fraud-alert": "We stopped transfer {transfer_id} of {amount} {currency} for review.",
        "welcome": "Welcome, {name}! Your wallet {account} is open.",
        "topup-receipt": "We received your deposit {provider_reference} of {amount} {currency} into {account}.",
        "withdrawal-receipt": "We paid out {amount} {currency} from {account} to {bank_account} (withdrawal {withdrawal_id}).",
        "withdrawal-failed": "Your withdrawal {withdrawal_id} of {amount} {currency} did not go through; your wallet keeps the money.",
    ]

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "notifications.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "notifications", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS notifications.outbox (
                    id          uuid        PRIMARY KEY,
                    saga_id     text        NOT NULL,
                    template    text        NOT NULL,
                    account     text        NOT NULL,
                    body        text        NOT NULL,
                    created_at  timestamptz NOT NULL DEFAULT now(),
                    sent_at     timestamptz
                )
                """
            ])
    }

    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("send", barrier: barrier) { context, connection in try await send(context, connection) }
        return handlers
    }

    public func send(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        guard let name = context.payload.value(at: ["template"])?.stringValue, let template = Self.templates[name] else {
            throw BusinessFailure(
                code: "unknown_template", message: "template must be one of \(Self.templates.keys.sorted().joined(separator: ", "))")
        }
        let account = context.payload.value(at: ["account"])?.stringValue ?? "-"
        var body = template
        for (key, value) in context.payload.objectValue ?? [:] {
            let text = value.stringValue ?? value.canonicalJSON
            body = body.replacingOccurrences(of: "{\(key)}", with: text)
        }
        let id = UUID()
        try await connection.run(
            """
            INSERT INTO notifications.outbox (id, saga_id, template, account, body)
            VALUES (\(id), \(context.command.sagaID), \(name), \(account), \(body))
            """, logger: logger)
        context.logger.info("notification queued", metadata: ["template": "\(name)", "account": "\(account)", "body": "\(body)"])
        return ["message_id": .string(id.uuidString.lowercased())]
    }

    /// The messages queued for a saga, oldest first.
    public func messages(sagaID: String) async throws -> [String] {
        var bodies: [String] = []
        let rows = try await client.checkedQuery(
            "SELECT body FROM notifications.outbox WHERE saga_id = \(sagaID) ORDER BY created_at, id", logger: logger)
        for try await body in rows.decode(String.self) { bodies.append(body) }
        return bodies
    }
}
