import BatonCore
import BatonEngine
import BatonParticipants
import BatonStore
import BatonTransport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension EndToEndSuites {
    /// Hundreds of random transfers among a fixed set of accounts while things go wrong: transfers
    /// stopped as fraud, transfers without the funds, the ledger's process killed with SIGKILL and
    /// restarted again and again, and participants that answer after the step has timed out. Every
    /// saga must end terminal, every leg must be applied at most once, and the sum of the balances
    /// must not change. A third of the transfers debit and check for fraud at once (a parallel
    /// group, so a fraud verdict stops a debit in flight), and a third run as child sagas.
    @Suite("Money conservation under failures", .serialized)
    struct MoneyConservationTests {
        static let logger = Logger(label: "baton.test.conservation")

        /// The language the participants are written in: the Swift ones (`baton-participants run`),
        /// or the same participants in Python on the Python worker SDK
        /// (`sdk/python/examples/fintech.py`, which `scripts/test` installs the SDK for).
        enum Language: String, CaseIterable, Sendable, CustomTestStringConvertible {
            case swift, python
            var testDescription: String { rawValue }
        }

        static let pythonParticipants = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().appending(path: "../../../sdk/python/examples/fintech.py").standardized

        /// A `baton-participants run` process, or its Python counterpart.
        final class Participants: Sendable {
            let arguments: [String]
            let language: Language
            let process: Mutex<Process?> = Mutex(nil)

            init(_ arguments: [String], language: Language = .swift) {
                self.arguments = arguments
                self.language = language
            }

            func start() throws {
                let process = Process()
                switch language {
                case .swift:
                    process.executableURL = try EndToEndSuites.ServeProcessTests.built("baton-participants")
                    process.arguments = ["run"] + arguments
                case .python:
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    process.arguments = ["python3", MoneyConservationTests.pythonParticipants.path] + arguments
                }
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                self.process.withLock { $0 = process }
            }

            /// Waits until the process answers `/healthz` on its `--metrics-listen` address, as a
            /// supervisor restarting it would before counting it up: a crash is a restart, not an
            /// outage as long as the submissions that follow it.
            func waitUntilHealthy(atMost limit: Duration = .seconds(20)) async throws {
                guard let flag = arguments.firstIndex(of: "--metrics-listen"), arguments.indices.contains(flag + 1),
                    let url = URL(string: "http://\(arguments[flag + 1])/healthz")
                else { return }
                let end = ContinuousClock.now + limit
                while ContinuousClock.now < end {
                    if let (_, response) = try? await URLSession.shared.data(from: url), (response as? HTTPURLResponse)?.statusCode == 200 {
                        return
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                Issue.record("the restarted participants never answered \(url)")
            }

            func kill() {
                guard let process = process.withLock({ $0 }) else { return }
                Glibc.kill(process.processIdentifier, SIGKILL)
                process.waitForEnd()
            }
        }

        @Test(
            "300 random transfers (plain, with a parallel group, as child sagas) with fraud, missing funds, ledger crashes and late replies: money is conserved",
            arguments: Language.allCases
        )
        func conservation(_ language: Language) async throws {
            let nats = try PrivateNATS()
            defer { nats.remove() }
            let batonDatabase = try await StoreFixture.createDatabase()
            let participantsDatabase = try await StoreFixture.createDatabase()
            // Short timeouts, so that late replies time out within the test; budgets wide enough that
            // no saga is suspended by the crashes (that is tested elsewhere).
            let definition = try Self.fundsTransfer(timeout: 1500, fraudCheckAttempts: 3)

            try await StoreFixture.withClient(batonDatabase) { batonClient in
                try await StoreFixture.withClient(participantsDatabase) { participants in
                    let store = SagaStore(client: batonClient, logger: Self.logger)
                    try await store.migrate()
                    for workflow in [definition, try Self.parallel(definition), Self.parent] {
                        try await store.registerDefinition(workflow, source: nil, now: .now)
                    }
                    let ledger = Ledger(client: participants, logger: Self.logger)
                    try await ledger.prepare()
                    let accounts = ["acc-1", "acc-2", "acc-3", "acc-4", "acc-5", "acc-poor"]
                    for account in accounts {
                        try await ledger.openAccount(account, currency: "EUR", balance: account == "acc-poor" ? 500 : 2_000_000)
                    }
                    let total = try await ledger.totalBalance()

                    let connection = try await NATSConnection.connect(.init(urlList: nats.url, name: "engine"))
                    let jetStream = try JetStream(connection)
                    for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
                    let runner = SagaRunner(store: store)

                    let url = participantsDatabase
                    let common = [
                        "--nats-url", nats.url, "--database-url", "postgres://\(url.username)@\(url.host):\(url.port)/\(url.database)",
                        "--ack-wait", "2",
                    ]
                    // The ledger answers late now and then (after its step timed out), and crashes.
                    // Each process serves its worker metrics on a port of its own.
                    let ledgerProcess = Participants(
                        ["ledger", "--inject-slow-rate", "0.05", "--inject-slow-delay", "2500"] + common
                            + ["--metrics-listen", "127.0.0.1:\(try LoopbackPort.free())"], language: language)
                    let others = Participants(
                        ["fraud", "notifications", "audit", "--inject-slow-rate", "0.05", "--inject-slow-delay", "2500"] + common
                            + ["--metrics-listen", "127.0.0.1:\(try LoopbackPort.free())"], language: language)
                    try ledgerProcess.start()
                    try others.start()
                    defer {
                        ledgerProcess.kill()
                        others.kill()
                    }

                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await OutboxRelay(store: store, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await ReplyConsumer(runner: runner, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await TimerScheduler(runner: runner, logger: Self.logger).run() }

                        let submitted = try await Self.submitTransfers(300, among: accounts, runner: runner, crashing: ledgerProcess)
                        let statuses = try await Self.settle(submitted, store: store)
                        // A parent ends as its child transfer did; the money moved under the child's id.
                        var ids: [String] = []
                        for (id, status) in zip(submitted, statuses) {
                            let children = try await store.children(of: id)
                            if let child = children.first {
                                #expect(children.count == 1 && child.status == status, "parent \(id) \(status), child \(child)")
                                ids.append(child.id)
                            } else {
                                ids.append(id)
                            }
                        }
                        #expect(ids.count - Set(submitted).intersection(ids).count == 100, "a third ran as child sagas")
                        try await Self.check(ids, statuses, ledger: ledger, participants: participants, total: total)
                        try await Self.checkConditionsAndHandlers(ids, store: store, participants: participants)
                        let interrupted = try await StoreFixture.scalar(
                            store, "SELECT count(*) FROM baton.saga_history WHERE kind = 'step_interrupted'", as: Int64.self)
                        Self.logger.info("conservation: \(interrupted ?? 0) branch steps stopped by the other branch's failure")
                        // The faults did happen: steps timed out (late replies, crashed workers) and were retried.
                        let timeouts = try await StoreFixture.scalar(
                            store, "SELECT count(*) FROM baton.saga_history WHERE kind = 'step_timed_out'", as: Int64.self)
                        #expect((timeouts ?? 0) > 0)
                        Self.logger.info("conservation: \(timeouts ?? 0) step timeouts")
                        group.cancelAll()
                        try await group.waitForAll()
                    }
                }
            }
        }

        /// The shipped `funds-transfer` with every step's (and compensation's) timeout set to
        /// `timeout` milliseconds, retries at most 1 s apart, 30 attempts each but the fraud check's.
        static func fundsTransfer(timeout: Int64, fraudCheckAttempts: Int) throws -> WorkflowDefinition {
            let source = try String(contentsOf: FintechHarness.workflows.appending(path: "funds-transfer.yaml"), encoding: .utf8)
            var definition = try WorkflowDefinition.parse(source, format: .yaml)
            for index in definition.steps.indices {
                definition.steps[index].timeout = SagaDuration(milliseconds: timeout)
                definition.steps[index].retry.maxAttempts = index == 1 ? fraudCheckAttempts : 30
                definition.steps[index].retry.maxDelay = SagaDuration(milliseconds: 1000)
                definition.steps[index].compensate?.timeout = SagaDuration(milliseconds: timeout)
                definition.steps[index].compensate?.retry.maxAttempts = 30
                definition.steps[index].compensate?.retry.maxDelay = SagaDuration(milliseconds: 1000)
            }
            for index in definition.failureHandlers.indices {
                definition.onFailure?[index].timeout = SagaDuration(milliseconds: timeout)
                definition.onFailure?[index].retry.maxAttempts = 30
                definition.onFailure?[index].retry.maxDelay = SagaDuration(milliseconds: 1000)
            }
            return definition
        }

        /// `funds-transfer` with the debit and the fraud check as the two branches of a parallel group.
        static func parallel(_ transfer: WorkflowDefinition) throws -> WorkflowDefinition {
            var definition = transfer
            definition.name = "funds-transfer-parallel"
            definition.steps[0].branch = BranchPlacement(group: "debit-and-check", name: "debit")
            definition.steps[1].branch = BranchPlacement(group: "debit-and-check", name: "check")
            #expect(definition.validate().isEmpty)
            return definition
        }

        /// A saga whose one step runs `funds-transfer` as its child, with the same input. Its budget
        /// outlasts the settling, so a parent never gives up on a child the crashes slowed down.
        static let parent = WorkflowDefinition(
            name: "transfer-parent", version: 1,
            steps: [
                .child(
                    "funds-transfer", name: "transfer", input: "{{input}}", timeout: .seconds(60),
                    retry: RetryPolicy(maxAttempts: 5, backoff: .fixed, initial: .seconds(1), maxDelay: .seconds(1), jitter: 0))
            ])

        /// Submits `count` random transfers, plain, with a parallel group, or as a child saga in
        /// turn, killing and restarting the ledger every 40.
        static func submitTransfers(
            _ count: Int, among accounts: [String], runner: SagaRunner, crashing ledgerProcess: Participants
        ) async throws -> [String] {
            var ids: [String] = []
            for number in 0..<count {
                let from = accounts.randomElement()!
                let to = accounts.filter { $0 != from }.randomElement()!
                var amount = Int64.random(in: 1...30_000)
                if number % 10 == 0 { amount = 600_000 }  // large and round: stopped as fraud
                if number % 10 == 1 { amount = 3_000_000 }  // more than any account holds
                if number % 10 == 2 { amount = 1_000_001 }  // large, not round: reported when it completes
                let input: JSONValue = [
                    "transfer_id": .string("t-\(number)"), "from_account": .string(from), "to_account": .string(to),
                    "amount": .integer(amount), "currency": "EUR",
                ]
                let workflow = ["funds-transfer", "funds-transfer-parallel", "transfer-parent"][number % 3]
                ids.append(try await runner.submit(workflow: workflow, input: input).record.saga.id)
                if number % 40 == 39 {
                    // Crash the ledger mid-flight, and bring it back.
                    ledgerProcess.kill()
                    try await Task.sleep(for: .milliseconds(300))
                    try ledgerProcess.start()
                    // Submissions are fast enough now that, without this, seven crashes came
                    // within three seconds and the ledger was down more than up: the retries of
                    // hundreds of waiting sagas then outran what it could answer, every reply came
                    // after its attempt's 1.5 s timeout, and the sagas ended SUSPENDED.
                    try await ledgerProcess.waitUntilHealthy()
                }
            }
            return ids
        }

        /// The sagas' statuses once all are terminal, or after four minutes.
        static func settle(_ ids: [String], store: SagaStore) async throws -> [SagaStatus] {
            let end = ContinuousClock.now + .seconds(240)
            var statuses: [SagaStatus] = []
            while ContinuousClock.now < end {
                statuses = []
                for id in ids { statuses.append(try #require(try await store.saga(id: id)).saga.status) }
                if statuses.allSatisfy(\.isTerminal) { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            return statuses
        }

        static func check(
            _ ids: [String], _ statuses: [SagaStatus], ledger: Ledger, participants: PostgresClient, total: Int64
        ) async throws {
            let completed = statuses.filter { $0 == .completed }.count
            let failed = statuses.filter { $0 == .failed }.count
            #expect(completed + failed == ids.count, "every saga ends COMPLETED or FAILED")
            #expect(completed > 0)
            #expect(failed >= ids.count / 5, "the fraud and insufficient-funds transfers fail")
            #expect(try await ledger.totalBalance() == total, "the sum of the balances never changes")
            // Each leg of each saga is booked at most once; a completed transfer is one debit and one
            // credit; a failed one is nothing, or a debit and its refund.
            var legs: [String: [String: Int]] = [:]
            let rows = try await participants.query("SELECT saga_id, kind FROM ledger.entries WHERE saga_id IS NOT NULL")
            for try await row in rows.decode((String, String).self) { legs[row.0, default: [:]][row.1, default: 0] += 1 }
            for (id, status) in zip(ids, statuses) {
                let booked = legs[id] ?? [:]
                if status == .completed {
                    #expect(booked == ["debit": 1, "credit": 1], "saga \(id)")
                } else {
                    #expect(booked.isEmpty || booked == ["debit": 1, "refund": 1], "saga \(id): \(booked)")
                }
            }
            logger.info("conservation: \(completed) completed, \(failed) failed")
        }

        /// The large-transfer report ran exactly for the completed large transfers; every failed
        /// transfer told its customer once, and raised one fraud alert exactly when fraud stopped it;
        /// no message was sent twice, whatever the crashes and late replies.
        static func checkConditionsAndHandlers(_ ids: [String], store: SagaStore, participants: PostgresClient) async throws {
            var messages: [String: [String]] = [:]
            let rows = try await participants.query("SELECT saga_id, template FROM notifications.outbox ORDER BY created_at, id")
            for try await row in rows.decode((String, String).self) { messages[row.0, default: []].append(row.1) }
            var reported = 0
            var alerts = 0
            for id in ids {
                let saga = try #require(try await store.saga(id: id)).saga
                func status(_ step: String) -> StepStatus? { saga.steps.first { $0.name == step }?.status }
                let large: Bool = if case .integer(let amount) = saga.input.value(at: ["amount"]) { amount >= 1_000_000 } else { false }
                if saga.status == .completed {
                    #expect(status("report-large-transfer") == (large ? .succeeded : .skipped), "saga \(id)")
                    #expect(status("notify-failure") == .pending && status("fraud-alert") == .pending, "saga \(id)")
                    #expect(messages[id] == ["transfer-completed"], "saga \(id): \(messages[id] ?? [])")
                    if large { reported += 1 }
                } else {
                    let fraud = saga.steps.first { $0.name == "fraud-check" }?.error?.code == "fraud_suspected"
                    #expect(status("notify-failure") == .succeeded, "saga \(id)")
                    #expect(status("fraud-alert") == (fraud ? .succeeded : .skipped), "saga \(id)")
                    #expect(
                        messages[id] == (fraud ? ["transfer-failed", "fraud-alert"] : ["transfer-failed"]),
                        "saga \(id): \(messages[id] ?? [])")
                    if fraud { alerts += 1 }
                }
            }
            #expect(alerts > 0, "fraud stopped some transfers")
            logger.info("conservation: \(reported) large transfers reported, \(alerts) fraud alerts")
        }
    }
}
