import BatonCore
import BatonParticipants
import BatonTransport
import BatonWorker
import Foundation
import Logging
import Testing

/// The ledger participant against the real PostgreSQL, through its idempotency barrier.
@Suite("Ledger participant")
struct LedgerTests {
    static let logger = Logger(label: "baton.test.ledger")
    static let saga = "0190f5a4-7b1c-7d2e-8f00-00000000aaaa"

    static func withLedger(_ body: (Ledger) async throws -> Void) async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let ledger = Ledger(client: client, logger: logger)
            try await ledger.prepare()
            try await ledger.prepare()
            try await ledger.openAccount("alice", currency: "EUR", balance: 10_000)
            try await ledger.openAccount("bob", currency: "EUR", balance: 500)
            try await ledger.openAccount("carol", currency: "USD", balance: 0)
            try await body(ledger)
        }
    }

    static func context(
        _ step: String, _ direction: StepDirection, _ payload: JSONValue, attempt: Int = 1, saga: String = saga
    ) -> HandlerContext {
        HandlerContext(
            command: CommandMessage(
                StepCommand(
                    sagaID: saga, step: step, participant: "ledger", action: direction == .action ? step : "refund",
                    direction: direction, attempt: attempt,
                    idempotencyKey: StepCommand.idempotencyKey(sagaID: saga, step: step, direction: direction),
                    deadline: .now + .seconds(30), payload: payload, correlationID: nil)),
            logger: logger)
    }

    static func debit(_ ledger: Ledger, _ payload: JSONValue, attempt: Int = 1, saga: String = saga) async throws -> ReplyStatus {
        try await ledger.barrier.run(context("debit", .action, payload, attempt: attempt, saga: saga)) { try await ledger.debit($0, $1) }
    }

    static func refund(_ ledger: Ledger, _ payload: JSONValue, attempt: Int = 1, saga: String = saga) async throws -> ReplyStatus {
        try await ledger.barrier.run(context("debit", .compensation, payload, attempt: attempt, saga: saga)) {
            try await ledger.refund($0, $1)
        }
    }

    static let twentyFive: JSONValue = ["account": "alice", "amount": 2500, "currency": "EUR", "reference": "transfer t-1"]

    @Test("a debit is applied once however often it is delivered, and its refund restores the balance once")
    func debitAndRefund() async throws {
        try await Self.withLedger { ledger in
            let total = try await ledger.totalBalance()
            let first = try await Self.debit(ledger, Self.twentyFive)
            #expect(first.wireName == "succeeded")
            #expect(try await Self.debit(ledger, Self.twentyFive, attempt: 2) == first)
            #expect(try await ledger.balance("alice") == 7_500)

            #expect(try await Self.refund(ledger, Self.twentyFive).wireName == "succeeded")
            _ = try await Self.refund(ledger, Self.twentyFive, attempt: 2)
            #expect(try await ledger.balance("alice") == 10_000)
            #expect(try await ledger.totalBalance() == total)
            #expect(try await ledger.history("alice").map(\.kind) == ["opening", "debit", "refund"])
            #expect(try await ledger.history("alice").map(\.balance) == [10_000, 7_500, 10_000])
        }
    }

    @Test("insufficient funds is a business failure that moves nothing")
    func insufficientFunds() async throws {
        try await Self.withLedger { ledger in
            let reply = try await Self.debit(ledger, ["account": "bob", "amount": 501, "currency": "EUR"])
            guard case .failed(let code, _) = reply else {
                Issue.record("expected a failure, got \(reply)")
                return
            }
            #expect(code == "insufficient_funds")
            #expect(try await ledger.balance("bob") == 500)
            #expect(try await ledger.history("bob").map(\.kind) == ["opening"])
        }
    }

    @Test("a refund that arrives before its debit refunds nothing, and the late debit is refused")
    func refundBeforeDebit() async throws {
        try await Self.withLedger { ledger in
            #expect(try await Self.refund(ledger, Self.twentyFive) == .succeeded(output: .null))
            let late = try await Self.debit(ledger, Self.twentyFive)
            guard case .failed(let code, _) = late else {
                Issue.record("a debit after its refund must be refused, got \(late)")
                return
            }
            #expect(code == "compensated")
            #expect(try await ledger.balance("alice") == 10_000)
        }
    }

    @Test("credits and debits across accounts conserve money; bad requests are business failures")
    func conservation() async throws {
        try await Self.withLedger { ledger in
            let total = try await ledger.totalBalance()
            for index in 0..<5 {
                let saga = "0190f5a4-7b1c-7d2e-8f00-00000000000\(index)"
                _ = try await Self.debit(ledger, ["account": "alice", "amount": 100, "currency": "EUR"], saga: saga)
                _ = try await ledger.barrier.run(
                    Self.context("credit", .action, ["account": "bob", "amount": 100, "currency": "EUR"], saga: saga)
                ) { try await ledger.credit($0, $1) }
            }
            #expect(try await ledger.balance("alice") == 9_500)
            #expect(try await ledger.balance("bob") == 1_000)
            #expect(try await ledger.totalBalance() == total)

            let cases: [(JSONValue, String)] = [
                (["account": "nobody", "amount": 1, "currency": "EUR"], "unknown_account"),
                (["account": "carol", "amount": 1, "currency": "EUR"], "currency_mismatch"),
                (["account": "alice", "amount": 0, "currency": "EUR"], "invalid_amount"),
                (["account": "alice", "amount": 1.5, "currency": "EUR"], "invalid_amount"),
            ]
            for (index, (payload, expected)) in cases.enumerated() {
                let reply = try await Self.debit(ledger, payload, saga: "0190f5a4-7b1c-7d2e-8f00-0000000001\(index)0")
                guard case .failed(let code, _) = reply else {
                    Issue.record("\(payload) must fail, got \(reply)")
                    continue
                }
                #expect(code == expected)
            }
            await #expect(throws: BusinessFailure.self) { try await ledger.openAccount("alice", currency: "EUR") }
        }
    }
}
