import BatonAPI
import BatonClient
import BatonCore
import BatonEngine
import BatonParticipants
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import Testing

/// The demo's whole system in one test process, all real: a JetStream nats-server of its own, the
/// orchestrator (engine services and its HTTP API on a free port) with `workflows/` registered,
/// every participant as a worker on a participants database, and the Transactions and Payments
/// HTTP APIs on free ports.
struct FintechHarness {
    static let logger = Logger(label: "baton.test.fintech")
    static let workflows = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../../../workflows")

    let store: SagaStore
    let runner: SagaRunner
    let participants: PostgresClient
    let ledger: Ledger
    let notifications: Notifications
    let users: Users
    let kyc: KYC
    let payments: Payments
    let transactions: Transactions
    let baton: BatonClient
    /// Clients of the Transactions and Payments APIs (the same client type serves any JSON API).
    let transactionsAPI: BatonClient
    let paymentsAPI: BatonClient
    /// Every line the engine and the workers logged, at debug and above.
    let logs: LogCapture
    /// The registry the workers' handler metrics are made in.
    let workerMetrics: WorkerMetricsEndpoint

    /// Runs `body` with the system up. `adjust` may change a workflow before it is registered (a
    /// shorter timeout, say); `replacing` gives the text to register instead of a file's, by file name.
    static func run(
        adjust: @Sendable (inout WorkflowDefinition) -> Void = { _ in },
        replacing: [String: String] = [:],
        _ body: (FintechHarness) async throws -> Void
    ) async throws {
        let nats = try PrivateNATS()
        defer { nats.remove() }
        let batonDatabase = try await StoreFixture.createDatabase()
        let participantsDatabase = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(batonDatabase) { batonClient in
            try await StoreFixture.withClient(participantsDatabase) { participants in
                let store = SagaStore(client: batonClient, logger: logger)
                try await store.migrate()
                for file in try FileManager.default.contentsOfDirectory(atPath: workflows.path) where file.hasSuffix(".yaml") {
                    let source = try replacing[file] ?? String(contentsOf: workflows.appending(path: file), encoding: .utf8)
                    var definition = try WorkflowDefinition.parse(source, format: .yaml)
                    adjust(&definition)
                    try await store.registerDefinition(definition, source: nil, now: .now)
                }
                let jetStream = try JetStream(try await NATSConnection.connectWhenUp(.init(urlList: nats.url, name: "baton-engine")))
                for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
                let registry = PrometheusCollectorRegistry()
                let metrics = EngineMetrics(factory: PrometheusMetricsFactory(registry: registry))
                let logs = LogCapture()
                let captured = logs.logger(label: "baton.test.fintech")
                let workerMetrics = WorkerMetricsEndpoint()
                // As in baton serve: commands go out straight after their commit, the relay sweeps.
                let engineStore = SagaStore(client: store.client, logger: logger, wakesOutboxRelays: false)
                let publishing = CommandPublishing(store: engineStore, jetStreams: .fixed(jetStream), metrics: metrics, logger: logger)
                let runner = SagaRunner(store: engineStore, dispatcher: publishing.dispatcher, metrics: metrics, logger: captured)

                let (batonPort, transactionsPort, paymentsPort) = (
                    try LoopbackPort.free(), try LoopbackPort.free(), try LoopbackPort.free()
                )
                let baton = BatonClient(base: "http://127.0.0.1:\(batonPort)")
                let ledger = Ledger(client: participants, logger: logger)
                let fraud = Fraud(client: participants, logger: logger)
                let notifications = Notifications(client: participants, logger: logger)
                let audit = Audit(client: participants, logger: logger)
                let users = Users(client: participants, logger: logger)
                let kyc = KYC(client: participants, delay: .milliseconds(200), logger: logger)
                let payments = Payments(client: participants, logger: logger)
                let transactions = Transactions(client: participants, baton: baton, logger: logger)
                try await ledger.prepare()
                try await fraud.prepare()
                try await notifications.prepare()
                try await audit.prepare()
                try await users.prepare()
                try await kyc.prepare()
                try await payments.prepare()
                try await transactions.prepare()

                let api = BatonAPI(store: store, runner: runner, configuration: .init(), metrics: registry) {
                    ["postgres": true, "nats": true]
                }
                let harness = FintechHarness(
                    store: store, runner: runner, participants: participants, ledger: ledger, notifications: notifications,
                    users: users, kyc: kyc, payments: payments, transactions: transactions, baton: baton,
                    transactionsAPI: BatonClient(base: "http://127.0.0.1:\(transactionsPort)"),
                    paymentsAPI: BatonClient(base: "http://127.0.0.1:\(paymentsPort)"), logs: logs, workerMetrics: workerMetrics)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await publishing.run() }
                    group.addTask { try await ReplyConsumer(runner: runner, jetStreams: .fixed(jetStream), logger: captured).run() }
                    group.addTask { try await TimerScheduler(runner: runner, logger: logger).run() }
                    group.addTask {
                        try await Application(
                            router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: batonPort)), logger: logger
                        ).run()
                    }
                    group.addTask {
                        try await Application(
                            router: transactions.router(), configuration: .init(address: .hostname("127.0.0.1", port: transactionsPort)),
                            logger: logger
                        ).run()
                    }
                    let decisions = NATSClient(options: .init(urlList: nats.url, name: "payments-api"), logger: logger)
                    group.addTask { try await decisions.run() }
                    group.addTask {
                        try await PaymentsService(
                            payments: payments, host: "127.0.0.1", port: paymentsPort, nats: decisions,
                            signals: SagaSignals(client: baton), logger: logger
                        ).run()
                    }
                    for (participant, handlers) in [
                        ("ledger", ledger.handlers), ("fraud", fraud.handlers), ("notifications", notifications.handlers),
                        ("audit", audit.handlers), ("users", users.handlers), ("kyc", kyc.handlers), ("payments", payments.handlers),
                        ("transactions", transactions.handlers),
                    ] {
                        let worker = Worker(
                            configuration: .init(participant: participant, nats: .init(urlList: nats.url, name: participant)),
                            handlers: handlers, logger: captured, metrics: workerMetrics.workerMetrics)
                        group.addTask { try await worker.run() }
                    }
                    for client in [harness.baton, harness.transactionsAPI, harness.paymentsAPI] {
                        try await waitUntilServing(client)
                    }
                    try await body(harness)
                    group.cancelAll()
                    try await group.waitForAll()
                }
            }
        }
    }

    static func waitUntilServing(_ client: BatonClient) async throws {
        for _ in 0..<100 {
            if (try? await client.get("/healthz")) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("\(client.base) did not start serving")
    }

    /// Submits a saga of `workflow` with `input`; returns its id.
    func submit(_ workflow: String, _ input: JSONValue) async throws -> String {
        try await runner.submit(workflow: workflow, input: input).record.saga.id
    }

    /// Waits until the saga is terminal (or suspended), up to `limit`.
    func settled(_ id: String, limit: Duration = .seconds(60)) async throws -> SagaRecord {
        try await EngineHarness.saga(id, in: store, limit: limit) { $0.saga.status.isTerminal || $0.saga.status == .suspended }
    }

    /// Waits until `condition` holds for the saga.
    func saga(_ id: String, until condition: (SagaRecord) -> Bool, limit: Duration = .seconds(30)) async throws -> SagaRecord {
        try await EngineHarness.saga(id, in: store, limit: limit, until: condition)
    }

    /// A JSON POST to one of the services; the status and body, also for refusals.
    func post(_ client: BatonClient, _ path: String, _ body: JSONValue = [:]) async throws -> (status: Int, body: JSONValue) {
        do {
            let response = try await client.request("POST", path, body: Data(body.canonicalJSON.utf8))
            return (response.status, response.body)
        } catch let failure as BatonClient.Failure {
            return (failure.status, ["detail": .string(failure.detail)])
        }
    }
}
