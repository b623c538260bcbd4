import BatonCore
import BatonParticipants
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO
import Testing

/// The fraud, notifications and audit participants against the real PostgreSQL.
@Suite("Fraud, notifications and audit participants")
struct FraudAuditNotificationsTests {
    static let logger = Logger(label: "baton.test.participants")

    static func context(_ saga: Int, step: String, _ payload: JSONValue) -> HandlerContext {
        let id = "0190f5a4-7b1c-7d2e-8f00-" + String(format: "%012d", saga)
        return HandlerContext(
            command: CommandMessage(
                StepCommand(
                    sagaID: id, step: step, participant: "p", action: step, direction: .action, attempt: 1,
                    idempotencyKey: StepCommand.idempotencyKey(sagaID: id, step: step, direction: .action), deadline: .now + .seconds(30),
                    payload: payload, correlationID: nil)),
            logger: logger)
    }

    @Test("fraud: large round amounts and a fast series from one account are rejected; the velocity lives in the database")
    func fraudRules() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let fraud = Fraud(client: client, logger: Self.logger)
            try await fraud.prepare()
            func score(_ saga: Int, _ account: String, _ amount: Int64) async throws -> ReplyStatus {
                try await fraud.barrier.run(
                    Self.context(saga, step: "fraud-check", ["from_account": .string(account), "amount": .integer(amount)])
                ) { try await fraud.score($0, $1) }
            }
            guard case .failed(let code, let message) = try await score(1, "mallory", 700_000) else {
                Issue.record("a large round amount must be rejected")
                return
            }
            #expect(code == "fraud_suspected")
            #expect(message.contains("large amount") && message.contains("round amount"))
            #expect(try await score(2, "alice", 700_001).wireName == "succeeded")  // large, not round: 60 < 70

            for saga in 10..<15 { #expect(try await score(saga, "bob", 1_234).wireName == "succeeded") }
            // Another process of the participant (another value, same database), with a stricter
            // velocity score, sees the five transfers this one approved.
            var rules = Fraud.Rules()
            rules.velocityScore = 80
            let strict = Fraud(client: client, rules: rules, logger: Self.logger)
            let sixth = try await strict.barrier.run(Self.context(20, step: "fraud-check", ["from_account": "bob", "amount": 1_234])) {
                try await strict.score($0, $1)
            }
            guard case .failed(_, let reason) = sixth else {
                Issue.record("the sixth transfer within the window must be rejected")
                return
            }
            #expect(reason.contains("5 transfers from bob"))
        }
    }

    @Test("notifications render their templates into the outbox; audit records are append-only and queryable by saga")
    func notificationsAndAudit() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let notifications = Notifications(client: client, logger: Self.logger)
            let audit = Audit(client: client, logger: Self.logger)
            try await notifications.prepare()
            try await audit.prepare()
            try await audit.prepare()
            let payload: JSONValue = [
                "template": "fraud-alert", "account": "alice", "amount": 900, "currency": "EUR", "transfer_id": "t-9",
            ]
            _ = try await notifications.barrier.run(Self.context(1, step: "notify", payload)) { try await notifications.send($0, $1) }
            _ = try await notifications.barrier.run(Self.context(1, step: "notify", payload)) { try await notifications.send($0, $1) }
            let saga = Self.context(1, step: "notify", payload).command.sagaID
            #expect(try await notifications.messages(sagaID: saga) == ["We stopped transfer t-9 of 900 EUR for review."])
            let unknown = try await notifications.barrier.run(Self.context(2, step: "notify", ["template": "poem"])) {
                try await notifications.send($0, $1)
            }
            #expect(unknown.wireName == "failed")

            for (index, event) in ["transfer-started", "transfer-completed"].enumerated() {
                _ = try await audit.barrier.run(Self.context(3, step: "audit-\(index)", ["saga_id": "s-3", "event": .string(event)])) {
                    try await audit.record($0, $1)
                }
            }
            #expect(try await audit.events(sagaID: "s-3").map(\.event) == ["transfer-started", "transfer-completed"])
            await #expect(throws: PSQLError.self) { try await client.query("DELETE FROM audit.events") }
            await #expect(throws: PSQLError.self) { try await client.query("UPDATE audit.events SET event = 'nothing'") }
        }
    }
}
