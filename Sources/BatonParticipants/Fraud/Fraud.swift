import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The fraud participant: scores a transfer with simple rules and rejects it (a business failure,
/// so the transfer is compensated) when the score reaches the threshold. The velocity rule counts
/// the account's recent transfers in the participant's own database, never in memory, so every
/// process of the participant sees the same history.
public struct Fraud: Sendable {
    public struct Rules: Sendable {
        /// Amounts at or above this (minor units) score `largeAmountScore`.
        public var largeAmount: Int64 = 500_000
        public var largeAmountScore = 60
        /// Amounts that are an exact multiple of this (minor units) score `roundAmountScore`.
        public var roundAmountUnit: Int64 = 100_000
        public var roundAmountScore = 20
        /// More than `velocityLimit` approved transfers from one account within `velocityWindow`
        /// score `velocityScore`.
        public var velocityLimit = 5
        public var velocityWindow: SagaDuration = .minutes(10)
        public var velocityScore = 50
        /// A transfer scoring this much or more is rejected.
        public var threshold = 70

        public init() {}
    }

    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    public let rules: Rules
    let logger: Logger

    public init(client: PostgresClient, rules: Rules = Rules(), logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "fraud.baton_barrier", logger: logger)
        self.rules = rules
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "fraud", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS fraud.scores (
                    saga_id      text        NOT NULL,
                    transfer_id  text        NOT NULL,
                    account      text        NOT NULL,
                    amount       bigint      NOT NULL,
                    score        integer     NOT NULL,
                    reasons      jsonb       NOT NULL,
                    scored_at    timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX IF NOT EXISTS scores_account ON fraud.scores (account, scored_at)",
            ])
    }

    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("score", barrier: barrier) { context, connection in try await score(context, connection) }
        return handlers
    }

    public func score(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let payload = context.payload
        guard let account = payload.value(at: ["from_account"])?.stringValue,
            case .integer(let amount)? = payload.value(at: ["amount"])
        else {
            throw BusinessFailure(code: "invalid_request", message: "\"from_account\" and an integer \"amount\" are required")
        }
        let transfer = payload.value(at: ["transfer_id"])?.stringValue ?? context.command.sagaID
        // The account's transfers, serialized so that two concurrent ones both count.
        try await connection.run("SELECT pg_advisory_xact_lock(hashtextextended(\(account), 1))", logger: logger)
        var recent = 0
        let since = Date.now - rules.velocityWindow
        let rows = try await connection.run(
            "SELECT count(*)::int FROM fraud.scores WHERE account = \(account) AND scored_at >= \(since)", logger: logger)
        for try await count in rows.decode(Int.self) { recent = count }

        var score = 0
        var reasons: [String] = []
        if amount >= rules.largeAmount {
            score += rules.largeAmountScore
            reasons.append("large amount")
        }
        if rules.roundAmountUnit > 0 && amount % rules.roundAmountUnit == 0 {
            score += rules.roundAmountScore
            reasons.append("round amount")
        }
        if recent >= rules.velocityLimit {
            score += rules.velocityScore
            reasons.append("\(recent) transfers from \(account) in the last \(rules.velocityWindow)")
        }
        guard score < rules.threshold else {
            context.logger.notice("transfer rejected as fraud", metadata: ["score": "\(score)", "reasons": "\(reasons)"])
            throw BusinessFailure(code: "fraud_suspected", message: "score \(score): " + reasons.joined(separator: ", "))
        }
        let reasonList = JSONValue.array(reasons.map(JSONValue.string))
        try await connection.run(
            """
            INSERT INTO fraud.scores (saga_id, transfer_id, account, amount, score, reasons)
            VALUES (\(context.command.sagaID), \(transfer), \(account), \(amount), \(score), \(reasonList.canonicalJSON)::jsonb)
            """, logger: logger)
        return ["score": .integer(Int64(score)), "decision": "approve", "reasons": reasonList]
    }
}
