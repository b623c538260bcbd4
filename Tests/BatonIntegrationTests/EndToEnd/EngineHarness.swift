import BatonCore
import BatonEngine
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import Synchronization
import Testing

/// An orchestrator and its participants, all real: a database of its own on the test PostgreSQL, a
/// JetStream nats-server of its own (the orchestrator consumes every reply, `baton.reply.>`, which
/// on the shared server would collide with other tests' consumers), the engine's services, and
/// worker SDK participants whose behaviour each test scripts.
final class EngineHarness: Sendable {
    static let logger = Logger(label: "baton.test.e2e")

    static let workflowSource = """
        name: e2e-order
        version: 1
        input:
          required: [amount]
          properties:
            amount: { type: integer }
        steps:
          - name: reserve
            participant: inventory
            action: reserve
            payload: { amount: "{{input.amount}}" }
            timeout: 3s
            retry: { max_attempts: 3, initial: 100ms, jitter: 0 }
            compensate:
              action: release
              payload: { reservation: "{{steps.reserve.output.reservation}}" }
              timeout: 3s
          - name: charge
            participant: payments
            action: charge
            payload: { amount: "{{input.amount}}" }
            pivot: true
            timeout: 3s
          - name: notify
            participant: notifications
            action: send
            payload: { amount: "{{input.amount}}" }
            timeout: 3s
            retry: { max_attempts: 2, initial: 100ms, jitter: 0 }
        """

    /// Two branches at once (reserve stock | hold funds, then verify the hold), then the pivot,
    /// which reads both branches' outputs.
    static let parallelSource = """
        name: e2e-parallel
        version: 1
        steps:
          - name: prepare
            parallel:
              - name: stock
                participant: inventory
                action: reserve
                timeout: 3s
                compensate: { action: release, payload: { reservation: "{{steps.stock.output.reservation}}" }, timeout: 3s }
              - name: funds
                steps:
                  - name: hold
                    participant: payments
                    action: hold
                    timeout: 3s
                    compensate: { action: unhold, payload: { hold: "{{steps.hold.output.hold}}" }, timeout: 3s }
                  - { name: verify, participant: notifications, action: verify, timeout: 3s }
          - name: charge
            participant: payments
            action: charge
            pivot: true
            payload: { reservation: "{{steps.stock.output.reservation}}", hold: "{{steps.hold.output.hold}}" }
            timeout: 3s
        """

    /// A parent (hold funds → a child saga of e2e-child → verify, which reads the child's output)
    /// and its child (reserve stock → send), which has no pivot, so a completed child can be undone;
    /// and a parent whose child workflow does not exist.
    static let childSources = [
        """
        name: e2e-parent
        version: 1
        steps:
          - name: hold
            participant: payments
            action: hold
            timeout: 3s
            compensate: { action: unhold, payload: { hold: "{{steps.hold.output.hold}}" }, timeout: 3s }
          - name: order
            workflow: e2e-child
            input: { amount: "{{input.amount}}" }
            timeout: 10s
          - name: confirm
            participant: notifications
            action: verify
            payload: { reservation: "{{steps.order.output.steps.reserve.reservation}}" }
            timeout: 3s
        """,
        """
        name: e2e-child
        version: 1
        steps:
          - name: reserve
            participant: inventory
            action: reserve
            payload: { amount: "{{input.amount}}" }
            timeout: 3s
            compensate: { action: release, payload: { reservation: "{{steps.reserve.output.reservation}}" }, timeout: 3s }
          - { name: send, participant: notifications, action: send, timeout: 3s }
        """,
        """
        name: e2e-orphan
        version: 1
        steps:
          - { name: order, workflow: e2e-missing, timeout: 5s }
        """,
    ]

    /// What each participant does, by action; and a count of every call, by action.
    let behaviour = Mutex<[String: @Sendable (HandlerContext) async throws -> JSONValue]>([:])
    let calls = Mutex<[String: Int]>([:])

    let store: SagaStore
    let runner: SagaRunner
    let nats: PrivateNATS
    /// The engine's NATS client, as in `baton serve`.
    let natsClient: NATSClient

    private init(store: SagaStore, runner: SagaRunner, nats: PrivateNATS, natsClient: NATSClient) {
        self.store = store
        self.runner = runner
        self.nats = nats
        self.natsClient = natsClient
    }

    func on(_ action: String, _ body: @escaping @Sendable (HandlerContext) async throws -> JSONValue) {
        behaviour.withLock { $0[action] = body }
    }

    func callCount(_ action: String) -> Int { calls.withLock { $0[action] ?? 0 } }

    /// Waits until `action` has been called, up to `limit`; whether it was.
    func waitForCall(_ action: String, within limit: Duration = .seconds(2)) async throws -> Bool {
        let end = ContinuousClock.now + limit
        while callCount(action) == 0 {
            guard ContinuousClock.now < end else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Waits until step `step` of saga `sagaID` has status `status` in the store.
    func waitForStep(_ step: String, of sagaID: String, toBe status: StepStatus) async throws {
        _ = try await wait(for: sagaID) { record in record.saga.steps.contains { $0.name == step && $0.status == status } }
    }

    /// Runs `body` with the whole system up, then stops it.
    static func run(heartbeats: Bool = true, _ body: (EngineHarness) async throws -> Void) async throws {
        let nats = try PrivateNATS()
        defer { nats.remove() }
        let natsURL = nats.url
        let natsClient = NATSClient(
            options: .init(urlList: natsURL, name: "baton-engine"), logger: logger, supervisionInterval: .milliseconds(50))
        let connecting = Task { try await natsClient.run() }
        defer { connecting.cancel() }
        for stream in BatonStreams.all { try await natsClient.jetStream().ensureStream(stream) }

        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let store = SagaStore(client: client, logger: logger)
            try await store.migrate()
            var definition = try WorkflowDefinition.parse(workflowSource, format: .yaml)
            try await store.registerDefinition(definition, source: workflowSource, now: .now)
            // The same steps under a saga deadline.
            definition.name = "e2e-deadline"
            definition.deadline = SagaDuration(milliseconds: 2000)
            try await store.registerDefinition(definition, source: nil, now: .now)
            for source in [parallelSource] + childSources {
                try await store.registerDefinition(try WorkflowDefinition.parse(source, format: .yaml), source: source, now: .now)
            }
            // As in baton serve: commands go out straight after their commit, the relay sweeps.
            let engineStore = SagaStore(client: store.client, logger: logger, wakesOutboxRelays: false)
            let publishing = CommandPublishing(store: engineStore, jetStreams: .client(natsClient), logger: logger)
            let runner = SagaRunner(store: engineStore, dispatcher: publishing.dispatcher)
            let harness = EngineHarness(store: store, runner: runner, nats: nats, natsClient: natsClient)

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await publishing.run() }
                group.addTask { try await ReplyConsumer(runner: runner, jetStreams: .client(natsClient), logger: logger).run() }
                group.addTask { try await TimerScheduler(runner: runner, logger: logger).run() }
                for (participant, actions) in [
                    ("inventory", [("reserve", StepDirection.action), ("release", .compensation)]),
                    ("payments", [("charge", .action), ("hold", .action), ("unhold", .compensation)]),
                    ("notifications", [("send", .action), ("verify", .action)]),
                ] {
                    var handlers = WorkerHandlers()
                    for (action, direction) in actions {
                        handlers.register(
                            action, direction: direction,
                            WorkerHandlers.replying { context in
                                harness.calls.withLock { $0[action, default: 0] += 1 }
                                guard let behaviour = harness.behaviour.withLock({ $0[action] }) else { return ["ok": true] }
                                return try await behaviour(context)
                            })
                    }
                    let worker = Worker(
                        configuration: .init(
                            participant: participant, nats: .init(urlList: natsURL, name: participant), heartbeats: heartbeats),
                        handlers: handlers, logger: logger)
                    group.addTask { try await worker.run() }
                }
                try await body(harness)
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }

    /// Submits a saga and waits until it is finished (or suspended), up to `limit`.
    func runSaga(
        workflow: String = "e2e-order", input: JSONValue = ["amount": 100], limit: Duration = .seconds(30)
    ) async throws
        -> SagaRecord
    {
        let created = try await runner.submit(workflow: workflow, input: input)
        return try await waitUntilSettled(created.record.saga.id, limit: limit)
    }

    func waitUntilSettled(_ id: String, limit: Duration = .seconds(30)) async throws -> SagaRecord {
        try await Self.saga(id, in: store, limit: limit) { $0.saga.status.isTerminal || $0.saga.status == .suspended }
    }

    /// Waits until `condition` holds for the saga (up to 30 s).
    func wait(for id: String, until condition: (SagaRecord) -> Bool) async throws -> SagaRecord {
        try await Self.saga(id, in: store, limit: .seconds(30), until: condition)
    }

    /// The saga once `condition` holds for it, or as it is after `limit`.
    static func saga(
        _ id: String, in store: SagaStore, limit: Duration, until condition: (SagaRecord) -> Bool
    ) async throws -> SagaRecord {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if let record = try await store.saga(id: id), condition(record) { return record }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try #require(try await store.saga(id: id))
    }

    /// The dead letters published so far (read through a consumer of their own), waiting up to
    /// `limit` for the first.
    func deadLetters(waitingUpTo limit: Duration) async throws -> [JetStreamMessage] {
        let jetStream = try JetStream(try await NATSConnection.connect(.init(urlList: nats.url, name: "dead-letter-reader")))
        let consumer = ConsumerConfiguration(durable: "inspect", filterSubject: "baton.dlq.>")
        try await jetStream.ensureConsumer(stream: BatonStreams.deadLetters.name, consumer)
        return try await jetStream.pullSubscription(
            stream: BatonStreams.deadLetters.name, consumer: consumer.durable, filterSubject: "baton.dlq.>"
        )
        .fetch(batch: 10, maxWait: limit)
    }

    /// The saga's history, in order.
    func history(_ id: String) async throws -> [HistoryEntry] {
        try await store.history(sagaID: id).map(\.entry)
    }
}

/// A JetStream nats-server of a test's own, which the test can stop and start again (same port,
/// same storage, so streams and consumers survive the outage).
final class PrivateNATS: Sendable {
    let port: Int
    let storage: URL
    private let server: Mutex<Process?>

    init() throws {
        port = try LoopbackPort.free()
        storage = FileManager.default.temporaryDirectory.appending(path: "baton-nats-\(UUID().uuidString)")
        server = Mutex(nil)
        try start()
    }

    var url: String { "nats://127.0.0.1:\(port)" }

    func start() throws {
        let process = try ReconnectTests.startServer(port: port, arguments: ["-js", "-sd", storage.path])
        server.withLock { $0 = process }
    }

    func stop() {
        let process = server.withLock { process -> Process? in
            defer { process = nil }
            return process
        }
        process?.stop()
    }

    func remove() {
        stop()
        try? FileManager.default.removeItem(at: storage)
    }
}
