import BatonCore
import BatonParticipants
import BatonStore
import Foundation
import Testing

extension EndToEndSuites {
    /// `workflows/onboarding.yaml` and `workflows/wallet-topup.yaml` on the real participants.
    @Suite("Onboarding and wallet top-up, end to end", .serialized)
    struct OnboardingTopUpTests {
        static func person(
            _ email: String, name: String = "Ada Lovelace", birth: String = "1990-12-10", firstDeposit: JSONValue? = nil
        ) -> JSONValue {
            var person: [String: JSONValue] = [
                "email": .string(email), "name": .string(name), "birth_date": .string(birth), "country": "GB",
                "document_number": "AB123456", "currency": "EUR",
            ]
            person["first_deposit"] = firstDeposit
            return .object(person)
        }

        @Test(
            "an approved customer gets a wallet and a welcome, after two checks that ran at once; a rejected one is deregistered and may try again"
        )
        func onboarding() async throws {
            try await FintechHarness.run { system in
                // Ada makes a first deposit: a wallet-topup saga, started as a child of her onboarding.
                let ada = Self.person("ada@example.com", firstDeposit: ["amount": 2_500, "provider_reference": "dep-ada"])
                let approved = try await system.settled(try await system.submit("onboarding", ada))
                #expect(approved.saga.status == .completed)
                #expect(
                    approved.saga.steps.map(\.name) == [
                        "register", "verify-identity", "screen-sanctions", "open-wallet", "first-deposit", "welcome",
                    ])
                let user = try #require(approved.saga.steps[0].output?.value(at: ["user_id"])?.stringValue)
                #expect(try await system.ledger.balance("wallet-\(user)") == 2_500)
                let deposit = try #require(try await system.store.children(of: approved.saga.id).first)
                #expect(deposit.workflow == "wallet-topup" && deposit.step == "first-deposit" && deposit.status == .completed)
                #expect(approved.saga.steps[4].output?.value(at: ["saga_id"]) == .string(deposit.id))
                #expect(
                    try await system.notifications.messages(sagaID: deposit.id) == [
                        "We received your deposit dep-ada of 2500 EUR into wallet-\(user)."
                    ])
                #expect(try await system.users.status(of: user) == "registered")
                #expect(try await system.kyc.decisions(userID: user) == ["documents: approved", "screening: approved"])
                // The checks overlapped: each started before the other finished.
                let (documents, screening) = (approved.saga.steps[1], approved.saga.steps[2])
                #expect(try #require(documents.startedAt) < #require(screening.finishedAt))
                #expect(try #require(screening.startedAt) < #require(documents.finishedAt))
                let kinds = try await system.store.history(sagaID: approved.saga.id).map(\.entry.kind)
                #expect(kinds.contains(.parallelStarted) && kinds.contains(.parallelJoined))
                #expect(
                    try await system.notifications.messages(sagaID: approved.saga.id) == [
                        "Welcome, Ada Lovelace! Your wallet wallet-\(user) is open."
                    ])

                let minor = try await system.settled(
                    try await system.submit("onboarding", Self.person("kid@example.com", name: "Young Kid", birth: "2015-01-01")))
                #expect(minor.saga.status == .failed)
                #expect(minor.saga.steps[1].error?.code == "kyc_rejected")
                #expect(minor.saga.steps[1].error?.message.contains("under 18") == true)
                // The screening was under way: it finished first, or was stopped by the rejection.
                #expect([.succeeded, .timedOut].contains(minor.saga.steps[2].status))
                #expect(minor.saga.steps[0].status == .compensated)
                let rejected = try #require(minor.saga.steps[0].output?.value(at: ["user_id"])?.stringValue)
                #expect(try await system.users.status(of: rejected) == "deregistered")
                #expect(try await system.kyc.decisions(userID: rejected).contains("documents: rejected"))
                #expect(try await system.ledger.balance("wallet-\(rejected)") == nil)

                let watched = try await system.settled(
                    try await system.submit("onboarding", Self.person("m@example.com", name: "Mallory Sanctioned")))
                #expect(watched.saga.status == .failed)
                #expect(watched.saga.steps[2].error?.message.contains("watch list") == true)

                // The email of a withdrawn registration is free again; an active one is not.
                let retried = try await system.settled(try await system.submit("onboarding", Self.person("kid@example.com")))
                #expect(retried.saga.status == .completed)
                // No first deposit: the child step is skipped, and no child started.
                #expect(retried.saga.steps[4].status == .skipped)
                #expect(try await system.store.children(of: retried.saga.id).isEmpty)
                let duplicate = try await system.settled(try await system.submit("onboarding", Self.person("ada@example.com")))
                #expect(duplicate.saga.status == .failed)
                #expect(duplicate.saga.steps[0].error?.code == "email_taken")
            }
        }

        /// Onboarding as version 1 wrote it: one KYC step that checks the documents and screens.
        static let onboardingV1 = """
            name: onboarding
            version: 1
            description: Register a user, verify their identity, open their wallet, welcome them.
            deadline: 30m
            steps:
              - name: register
                participant: users
                action: register
                payload: { email: "{{input.email}}", name: "{{input.name}}" }
                timeout: 5s
                compensate: { action: deregister, payload: { user_id: "{{steps.register.output.user_id}}" }, timeout: 5s }
              - name: verify-identity
                participant: kyc
                action: verify
                payload:
                  user_id: "{{steps.register.output.user_id}}"
                  name: "{{input.name}}"
                  birth_date: "{{input.birth_date}}"
                  country: "{{input.country}}"
                  document_number: "{{input.document_number}}"
                timeout: 30s
              - name: open-wallet
                participant: ledger
                action: open-wallet
                pivot: true
                payload: { user_id: "{{steps.register.output.user_id}}", currency: "{{input.currency}}" }
                timeout: 5s
              - name: welcome
                participant: notifications
                action: send
                payload: { template: welcome, account: "{{steps.open-wallet.output.account}}", name: "{{input.name}}" }
                timeout: 5s
            """

        @Test("onboarding v1 sagas still run: one KYC step checks the documents and screens")
        func versionOne() async throws {
            try await FintechHarness.run(replacing: ["onboarding.yaml": Self.onboardingV1]) { system in
                let approved = try await system.settled(try await system.submit("onboarding", Self.person("grace@example.com")))
                #expect(approved.saga.status == .completed && approved.saga.workflowVersion == 1)
                let user = try #require(approved.saga.steps[0].output?.value(at: ["user_id"])?.stringValue)
                #expect(try await system.kyc.decisions(userID: user) == ["full: approved"])
                let watched = try await system.settled(
                    try await system.submit("onboarding", Self.person("m@example.com", name: "Mallory Sanctioned")))
                #expect(watched.saga.status == .failed)
                #expect(watched.saga.steps[1].error?.message.contains("watch list") == true)
            }
        }

        @Test("a top-up credits the wallet once per deposit; one to a missing wallet returns the deposit")
        func topUp() async throws {
            try await FintechHarness.run { system in
                try await system.ledger.openAccount("wallet-usr_1", currency: "EUR")
                let deposit: JSONValue = ["wallet": "wallet-usr_1", "amount": 2_000, "currency": "EUR", "provider_reference": "dep-1"]
                let credited = try await system.settled(try await system.submit("wallet-topup", deposit))
                #expect(credited.saga.status == .completed)
                #expect(try await system.ledger.balance("wallet-usr_1") == 2_000)
                #expect(
                    try await system.notifications.messages(sagaID: credited.saga.id) == [
                        "We received your deposit dep-1 of 2000 EUR into wallet-usr_1."
                    ])

                // The same provider deposit again is refused, and credits nothing.
                let repeated = try await system.settled(try await system.submit("wallet-topup", deposit))
                #expect(repeated.saga.status == .failed)
                #expect(repeated.saga.steps[0].error?.code == "duplicate_deposit")
                #expect(try await system.ledger.balance("wallet-usr_1") == 2_000)

                let missing = try await system.settled(
                    try await system.submit(
                        "wallet-topup", ["wallet": "wallet-nobody", "amount": 500, "currency": "EUR", "provider_reference": "dep-2"]))
                #expect(missing.saga.status == .failed)
                #expect(missing.saga.steps[1].error?.code == "unknown_account")
                #expect(missing.saga.steps[0].status == .compensated)
            }
        }

        @Test(
            "a withdrawal debits the wallet and pays out once; one beyond the balance pays nothing and tells the customer; fraud also raises an alert"
        )
        func withdrawal() async throws {
            try await FintechHarness.run { system in
                try await system.ledger.openAccount("wallet-usr_2", currency: "EUR", balance: 900_000)
                func withdraw(_ id: String, _ amount: Int64) async throws -> SagaRecord {
                    try await system.settled(
                        try await system.submit(
                            "wallet-withdrawal",
                            [
                                "withdrawal_id": .string(id), "wallet": "wallet-usr_2", "amount": .integer(amount), "currency": "EUR",
                                "bank_account": "DE89370400440532013000",
                            ]))
                }
                let paid = try await withdraw("w-1", 2_000)
                #expect(paid.saga.status == .completed)
                #expect(paid.saga.steps.first { $0.name == "payout" }?.output?.value(at: ["status"]) == "sent")
                #expect(try await system.ledger.balance("wallet-usr_2") == 898_000)
                #expect(
                    try await system.notifications.messages(sagaID: paid.saga.id) == [
                        "We paid out 2000 EUR from wallet-usr_2 to DE89370400440532013000 (withdrawal w-1)."
                    ])

                // More than the wallet holds: the debit fails, nothing is paid out, the customer is told.
                let refused = try await withdraw("w-2", 5_000_000)
                #expect(refused.saga.status == .failed)
                #expect(refused.saga.steps[0].error?.code == "insufficient_funds")
                #expect(refused.saga.steps.first { $0.name == "fraud-alert" }?.status == .skipped)
                #expect(
                    try await system.notifications.messages(sagaID: refused.saga.id) == [
                        "Your withdrawal w-2 of 5000000 EUR did not go through; your wallet keeps the money."
                    ])

                // Large and round: fraud stops it; the wallet is refunded, the customer told, an alert raised.
                let stopped = try await withdraw("w-3", 600_000)
                #expect(stopped.saga.status == .failed)
                #expect(stopped.saga.steps.map(\.status).prefix(2) == [.compensated, .failed])
                #expect(try await system.notifications.messages(sagaID: stopped.saga.id).count == 2)
                #expect(try await system.ledger.balance("wallet-usr_2") == 898_000)
                #expect(try await system.payments.payouts(wallet: "wallet-usr_2").map(\.withdrawal) == ["w-1"])
            }
        }
    }
}
