import BatonClient
import BatonCore
import BatonParticipants
import BatonStore
import Foundation
import Testing

extension EndToEndSuites {
    /// `workflows/checkout.yaml` across the Transactions and Payments services, through their HTTP
    /// APIs: the payment provider's confirmation arrives from outside, while the saga's step waits.
    @Suite("Checkout, end to end", .serialized)
    struct CheckoutTests {
        /// Opens a transaction with one item and submits it; returns its id and saga id.
        static func submitted(_ system: FintechHarness, unitPrice: Int64 = 1_250, quantity: Int64 = 2) async throws -> (String, String) {
            let created = try await system.post(system.transactionsAPI, "/transactions", ["customer_id": "cust-1", "currency": "EUR"])
            #expect(created.status == 201)
            let id = try #require(created.body.value(at: ["id"])?.stringValue)
            let added = try await system.post(
                system.transactionsAPI, "/transactions/\(id)/items",
                ["sku": "book-42", "description": "A book", "quantity": .integer(quantity), "unit_price": .integer(unitPrice)])
            #expect(added.status == 201)
            #expect(added.body.value(at: ["total"]) == .integer(unitPrice * quantity))
            // With the caller's trace, which the Transactions service passes on to the saga.
            let submitted = try await system.transactionsAPI.request(
                "POST", "/transactions/\(id)/submit", body: Data("{}".utf8), headers: ["traceparent": traceparent])
            #expect(submitted.status == 202)
            return (id, try #require(submitted.body.value(at: ["saga_id"])?.stringValue))
        }

        static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

        /// The payment the saga started, once it waits for the provider.
        static func awaitedPayment(_ system: FintechHarness, saga: String) async throws -> String {
            let waiting = try await system.saga(saga, until: { $0.saga.cursor == 2 && $0.saga.steps[2].status == .running })
            return try #require(waiting.saga.steps[1].output?.value(at: ["payment_id"])?.stringValue)
        }

        @Test("a confirmation that arrives later completes the waiting step and the transaction; the rules hold")
        func confirmedLater() async throws {
            try await FintechHarness.run { system in
                let (id, saga) = try await Self.submitted(system)
                let paymentID = try await Self.awaitedPayment(system, saga: saga)
                // The step waits, with no worker held: the command was acknowledged, the payment is pending.
                try await Task.sleep(for: .seconds(1))
                #expect(try await system.store.saga(id: saga)?.saga.status == .processing)
                #expect(try await system.payments.payment(paymentID)?.status == "pending")

                // Items are immutable after submit, and submitting again starts nothing new.
                let late = try await system.post(
                    system.transactionsAPI, "/transactions/\(id)/items", ["sku": "pen", "quantity": 1, "unit_price": 100])
                #expect(late.status == 409)
                let again = try await system.post(system.transactionsAPI, "/transactions/\(id)/submit")
                #expect(again.body.value(at: ["saga_id"])?.stringValue == saga)

                let confirmed = try await system.post(system.paymentsAPI, "/payments/\(paymentID)/confirm")
                #expect(confirmed.status == 200)
                #expect(confirmed.body.value(at: ["status"]) == "confirmed")
                let record = try await system.settled(saga)
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[2].output?.value(at: ["status"]) == "confirmed")
                #expect(record.saga.traceparent == Self.traceparent)
                // The confirmation came as the signal payment-result, sent by the Payments service.
                #expect(record.saga.signals.map(\.name) == ["payment-result"])
                #expect(record.saga.signals.first?.key == "payment-\(paymentID)")
                #expect(record.saga.signals.first?.consumedBy == "await-payment")

                let transaction = try await system.transactionsAPI.get("/transactions/\(id)")
                #expect(transaction.value(at: ["status"]) == "completed")
                #expect(transaction.value(at: ["payment_id"])?.stringValue == paymentID)
                // A payment is decided once; a completed transaction cannot be cancelled.
                #expect(try await system.post(system.paymentsAPI, "/payments/\(paymentID)/fail").status == 409)
                #expect(try await system.post(system.transactionsAPI, "/transactions/\(id)/cancel").status == 409)
            }
        }

        /// Checkout version 1, before signals: the Payments participant answers `await-confirmation`
        /// late. Sagas started on it must still finish after the upgrade.
        static let checkoutV1 = """
            name: checkout
            version: 1
            description: Start a payment for a submitted transaction, await its confirmation, then complete the transaction.
            deadline: 30m
            input:
              required: [transaction_id, customer_id, amount, currency]
              properties:
                transaction_id: { type: string }
                customer_id: { type: string }
                amount: { type: integer, minimum: 1, description: Total in minor units }
                currency: { type: string }
            steps:
              - name: mark-submitted
                participant: transactions
                action: mark-submitted
                payload:
                  transaction_id: "{{input.transaction_id}}"
                  saga_id: "{{saga.id}}"
                timeout: 5s
                retry: { max_attempts: 5, backoff: exponential, initial: 200ms, max_delay: 5s }
                compensate:
                  action: cancel
                  payload:
                    transaction_id: "{{input.transaction_id}}"
                    reason: payment failed or timed out
                  timeout: 5s
              - name: start-payment
                participant: payments
                action: start
                payload:
                  transaction_id: "{{input.transaction_id}}"
                  customer_id: "{{input.customer_id}}"
                  amount: "{{input.amount}}"
                  currency: "{{input.currency}}"
                timeout: 10s
                retry: { max_attempts: 5, backoff: exponential, initial: 500ms, max_delay: 10s }
                compensate:
                  action: void
                  payload:
                    payment_id: "{{steps.start-payment.output.payment_id}}"
                    transaction_id: "{{input.transaction_id}}"
                  timeout: 10s
              - name: await-confirmation
                participant: payments
                action: await-confirmation
                payload:
                  payment_id: "{{steps.start-payment.output.payment_id}}"
                timeout: 15m
                retry: { max_attempts: 1 }
              - name: complete-transaction
                participant: transactions
                action: complete
                pivot: true
                payload:
                  transaction_id: "{{input.transaction_id}}"
                  payment_id: "{{steps.start-payment.output.payment_id}}"
                timeout: 5s
                retry: { max_attempts: 10, backoff: exponential, initial: 200ms, max_delay: 30s }
            """

        @Test("a checkout v1 saga, whose step the Payments participant answers late, still completes; its signal is refused and dropped")
        func versionOne() async throws {
            try await FintechHarness.run(replacing: ["checkout.yaml": Self.checkoutV1]) { system in
                let (id, saga) = try await Self.submitted(system)
                let paymentID = try await Self.awaitedPayment(system, saga: saga)
                #expect(try await system.store.saga(id: saga)?.saga.workflowVersion == 1)
                #expect(try await system.post(system.paymentsAPI, "/payments/\(paymentID)/confirm").status == 200)
                let record = try await system.settled(saga)
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[2].name == "await-confirmation")
                #expect(record.saga.steps[2].output?.value(at: ["status"]) == "confirmed")
                #expect(try await system.transactionsAPI.get("/transactions/\(id)").value(at: ["status"]) == "completed")
                // No step of v1 waits for the signal: the saga refuses it, and it is not sent again.
                let end = ContinuousClock.now + .seconds(10)
                var outcome: String?
                while outcome == nil && ContinuousClock.now < end {
                    let rows = try await system.participants.query(
                        "SELECT outcome FROM payments.decision_signals WHERE payment_id = \(paymentID) AND sent_at IS NOT NULL")
                    for try await text in rows.decode(String.self) { outcome = text }
                    if outcome == nil { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(outcome?.hasPrefix("refused: the workflow has no step that waits for a signal named 'payment-result'") == true)
            }
        }

        @Test("a confirmation that comes before the step waits is seen by the step")
        func confirmedEarly() async throws {
            try await FintechHarness.run { system in
                // The payment is started (and confirmed) by the Payments API before the saga asks.
                let (id, saga) = try await Self.submitted(system)
                let record = try await system.saga(saga, until: { $0.saga.steps[1].status == .succeeded })
                let paymentID = try #require(record.saga.steps[1].output?.value(at: ["payment_id"])?.stringValue)
                _ = try await system.post(system.paymentsAPI, "/payments/\(paymentID)/confirm")
                #expect(try await system.settled(saga).saga.status == .completed)
                #expect(try await system.transactionsAPI.get("/transactions/\(id)").value(at: ["status"]) == "completed")
            }
        }

        @Test("a failed payment fails the transaction and voids nothing twice")
        func paymentFails() async throws {
            try await FintechHarness.run { system in
                let (id, saga) = try await Self.submitted(system)
                let paymentID = try await Self.awaitedPayment(system, saga: saga)
                let failed = try await system.post(system.paymentsAPI, "/payments/\(paymentID)/fail", ["reason": "card declined"])
                #expect(failed.status == 200)
                let record = try await system.settled(saga)
                #expect(record.saga.status == .failed)
                #expect(record.saga.steps[2].error?.code == "payment_failed")
                #expect(record.saga.steps.prefix(2).map(\.status) == [.compensated, .compensated])
                let transaction = try await system.transactionsAPI.get("/transactions/\(id)")
                #expect(transaction.value(at: ["status"]) == "failed")
                #expect(try await system.payments.payment(paymentID)?.status == "failed")
                #expect(try await system.post(system.paymentsAPI, "/payments/\(paymentID)/confirm").status == 409)
            }
        }

        @Test("a confirmation that never comes times the step out: the payment is voided, the transaction failed")
        func confirmationTimesOut() async throws {
            let shortWait: @Sendable (inout WorkflowDefinition) -> Void = { definition in
                guard definition.name == "checkout", let index = definition.steps.firstIndex(where: { $0.name == "await-payment" })
                else { return }
                definition.steps[index].timeout = SagaDuration(milliseconds: 1500)
            }
            try await FintechHarness.run(adjust: shortWait) { system in
                let (id, saga) = try await Self.submitted(system)
                let paymentID = try await Self.awaitedPayment(system, saga: saga)
                let record = try await system.settled(saga)
                #expect(record.saga.status == .failed)
                // Waiting had no effect: the step failed (its outcome is known), nothing to undo.
                #expect(record.saga.steps[2].status == .failed)
                #expect(record.saga.steps[2].error?.code == "timeout")
                #expect(try await system.payments.payment(paymentID)?.status == "voided")
                #expect(try await system.transactionsAPI.get("/transactions/\(id)").value(at: ["status"]) == "failed")
                // The provider's late callback is refused: the payment was voided.
                #expect(try await system.post(system.paymentsAPI, "/payments/\(paymentID)/confirm").status == 409)
            }
        }

        @Test("cancelling a submitted transaction cancels its saga; an open one is cancelled at once")
        func cancel() async throws {
            try await FintechHarness.run { system in
                let (id, saga) = try await Self.submitted(system)
                let paymentID = try await Self.awaitedPayment(system, saga: saga)
                let cancelled = try await system.post(system.transactionsAPI, "/transactions/\(id)/cancel")
                #expect(cancelled.status == 202)
                let settled = try await system.settled(saga)
                #expect(settled.saga.status == .cancelled)
                #expect(settled.saga.cancellation != nil)
                #expect(try await system.transactionsAPI.get("/transactions/\(id)").value(at: ["status"]) == "cancelled")
                #expect(try await system.payments.payment(paymentID)?.status == "voided")

                let open = try await system.post(system.transactionsAPI, "/transactions", ["customer_id": "cust-2", "currency": "EUR"])
                let openID = try #require(open.body.value(at: ["id"])?.stringValue)
                let cancelledOpen = try await system.post(system.transactionsAPI, "/transactions/\(openID)/cancel")
                #expect(cancelledOpen.body.value(at: ["status"]) == "cancelled")
                #expect(try await system.post(system.transactionsAPI, "/transactions/\(openID)/submit").status == 409)
            }
        }

        @Test("bad requests are problems that say what is wrong")
        func refusals() async throws {
            try await FintechHarness.run { system in
                let created = try await system.post(system.transactionsAPI, "/transactions", ["customer_id": "c", "currency": "EUR"])
                let id = try #require(created.body.value(at: ["id"])?.stringValue)
                // The total must be positive.
                let empty = try await system.post(system.transactionsAPI, "/transactions/\(id)/submit")
                #expect(empty.status == 422)
                #expect(empty.body.value(at: ["detail"])?.stringValue?.contains("total must be positive") == true)
                #expect(
                    try await system.post(system.transactionsAPI, "/transactions", ["customer_id": "c", "currency": "euro"]).status == 422)
                #expect(
                    try await system.post(
                        system.transactionsAPI, "/transactions/\(id)/items", ["sku": "x", "quantity": 0, "unit_price": 5]
                    )
                    .status == 422)
                #expect(try await system.post(system.transactionsAPI, "/transactions/txn_missing/submit").status == 404)
                #expect(try await system.post(system.paymentsAPI, "/payments/pay_missing/confirm").status == 404)
                let noAmount = try await system.post(
                    system.paymentsAPI, "/payments/start", ["transaction_id": "t", "customer_id": "c", "currency": "EUR"])
                #expect(noAmount.status == 422)
                #expect(noAmount.body.value(at: ["detail"])?.stringValue?.contains("amount") == true)

                // Starting a payment is idempotent per transaction.
                let first = try await system.post(
                    system.paymentsAPI, "/payments/start", ["transaction_id": "t-9", "customer_id": "c", "amount": 500, "currency": "EUR"])
                let second = try await system.post(
                    system.paymentsAPI, "/payments/start", ["transaction_id": "t-9", "customer_id": "c", "amount": 500, "currency": "EUR"])
                #expect(first.status == 201)
                #expect(first.body.value(at: ["id"]) == second.body.value(at: ["id"]))
                let other = try await system.post(
                    system.paymentsAPI, "/payments/start", ["transaction_id": "t-9", "customer_id": "c", "amount": 900, "currency": "EUR"])
                #expect(other.status == 409)
            }
        }
    }
}
