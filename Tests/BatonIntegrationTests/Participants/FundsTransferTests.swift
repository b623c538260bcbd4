import BatonCore
import BatonEngine
import BatonParticipants
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import Testing

extension EndToEndSuites {
    /// `workflows/funds-transfer.yaml` run for real: the engine, and the ledger, fraud, notifications
    /// and audit participants, each in its own schema of one participants database.
    @Suite("Funds transfer, end to end", .serialized)
    struct FundsTransferTests {
        static let logger = Logger(label: "baton.test.transfer")

        @Test(
            "transfers that succeed, fail on funds, fail on fraud, and are large: balances add up, money is conserved, failures are told, large ones reported"
        )
        func mixedTransfers() async throws {
            let nats = try PrivateNATS()
            defer { nats.remove() }
            let batonDatabase = try await StoreFixture.createDatabase()
            let participantsDatabase = try await StoreFixture.createDatabase()
            let workflow = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(
                path: "../../../workflows/funds-transfer.yaml")
            let source = try String(contentsOf: workflow, encoding: .utf8)

            try await StoreFixture.withClient(batonDatabase) { batonClient in
                try await StoreFixture.withClient(participantsDatabase) { participants in
                    let store = SagaStore(client: batonClient, logger: Self.logger)
                    try await store.migrate()
                    try await store.registerDefinition(try WorkflowDefinition.parse(source, format: .yaml), source: source, now: .now)
                    let ledger = Ledger(client: participants, logger: Self.logger)
                    let fraud = Fraud(client: participants, logger: Self.logger)
                    let notifications = Notifications(client: participants, logger: Self.logger)
                    let audit = Audit(client: participants, logger: Self.logger)
                    try await ledger.prepare()
                    try await fraud.prepare()
                    try await notifications.prepare()
                    try await audit.prepare()
                    try await ledger.openAccount("alice", currency: "EUR", balance: 5_000_000)
                    try await ledger.openAccount("bob", currency: "EUR", balance: 5_000)
                    try await ledger.openAccount("carol", currency: "EUR", balance: 0)
                    let total = try await ledger.totalBalance()

                    let connection = try await NATSConnection.connect(.init(urlList: nats.url, name: "engine"))
                    let jetStream = try JetStream(connection)
                    for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
                    let runner = SagaRunner(store: store)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await OutboxRelay(store: store, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await ReplyConsumer(runner: runner, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await TimerScheduler(runner: runner, logger: Self.logger).run() }
                        for (participant, handlers) in [
                            ("ledger", ledger.handlers), ("fraud", fraud.handlers), ("notifications", notifications.handlers),
                            ("audit", audit.handlers),
                        ] {
                            let worker = Worker(
                                configuration: .init(participant: participant, nats: .init(urlList: nats.url, name: participant)),
                                handlers: handlers, logger: Self.logger)
                            group.addTask { try await worker.run() }
                        }

                        func transfer(_ id: String, _ from: String, _ to: String, _ amount: Int64) async throws -> String {
                            try await runner.submit(
                                workflow: "funds-transfer",
                                input: [
                                    "transfer_id": .string(id), "from_account": .string(from), "to_account": .string(to),
                                    "amount": .integer(amount), "currency": "EUR",
                                ], idempotencyKey: id
                            ).record.saga.id
                        }
                        let completed = try await transfer("t-1", "alice", "bob", 2_500)
                        let noFunds = try await transfer("t-2", "bob", "carol", 999_999)
                        let fraudulent = try await transfer("t-3", "alice", "carol", 600_000)
                        // Large (10,000.00 or more) but not round: it passes the fraud check and is reported.
                        let large = try await transfer("t-4", "alice", "carol", 1_234_567)

                        let end = ContinuousClock.now + .seconds(60)
                        var records: [String: SagaRecord] = [:]
                        while ContinuousClock.now < end {
                            for id in [completed, noFunds, fraudulent, large] { records[id] = try await store.saga(id: id) }
                            if records.values.allSatisfy({ $0.saga.status.isTerminal }) { break }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        #expect(records[completed]?.saga.status == .completed)
                        #expect(records[noFunds]?.saga.status == .failed)
                        #expect(records[noFunds]?.saga.steps.first?.error?.code == "insufficient_funds")
                        #expect(records[fraudulent]?.saga.status == .failed)
                        #expect(records[fraudulent]?.saga.steps.map(\.status).prefix(2) == [.compensated, .failed])
                        #expect(records[fraudulent]?.saga.steps[1].error?.code == "fraud_suspected")
                        #expect(records[large]?.saga.status == .completed)
                        func status(_ id: String, _ step: String) -> StepStatus? {
                            records[id]?.saga.steps.first { $0.name == step }?.status
                        }
                        // The condition: only the large transfer is reported.
                        #expect(status(completed, "report-large-transfer") == .skipped)
                        #expect(status(large, "report-large-transfer") == .succeeded)
                        // The failure handlers: every failed transfer tells its customer; only the
                        // one fraud stopped raises an alert; a completed one runs neither.
                        #expect(status(noFunds, "notify-failure") == .succeeded)
                        #expect(status(noFunds, "fraud-alert") == .skipped)
                        #expect(status(fraudulent, "notify-failure") == .succeeded)
                        #expect(status(fraudulent, "fraud-alert") == .succeeded)
                        #expect(status(completed, "notify-failure") == .pending)
                        #expect(records[fraudulent]?.saga.lastError?.hasPrefix("fraud-check:") == true)
                        let handlerHistory = try await store.history(sagaID: fraudulent).map(\.entry.kind)
                        #expect(handlerHistory.contains(.failureHandlersStarted))
                        #expect(handlerHistory.last == .sagaFailed)

                        #expect(try await ledger.balance("alice") == 5_000_000 - 2_500 - 1_234_567)
                        #expect(try await ledger.balance("bob") == 7_500)
                        #expect(try await ledger.balance("carol") == 1_234_567)
                        #expect(try await ledger.totalBalance() == total)
                        #expect(try await ledger.history("alice").map(\.kind).sorted() == ["debit", "debit", "debit", "opening", "refund"])
                        #expect(try await audit.events(sagaID: completed).map(\.event) == ["transfer-completed"])
                        #expect(try await audit.events(sagaID: large).map(\.event) == ["large-transfer", "transfer-completed"])
                        #expect(try await notifications.messages(sagaID: completed) == ["Your transfer t-1 of 2500 EUR has completed."])
                        #expect(
                            try await notifications.messages(sagaID: noFunds) == [
                                "Your transfer t-2 of 999999 EUR did not go through; nothing was taken."
                            ])
                        #expect(
                            try await notifications.messages(sagaID: fraudulent) == [
                                "Your transfer t-3 of 600000 EUR did not go through; nothing was taken.",
                                "We stopped transfer t-3 of 600000 EUR for review.",
                            ])

                        group.cancelAll()
                        try await group.waitForAll()
                    }
                }
            }
        }
    }
}
