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

/// Three nats-servers on loopback, clustered, with JetStream on each (docs/scaling.md).
final class NATSCluster: Sendable {
    let clientPorts: [Int]
    let routePorts: [Int]
    let storage: URL
    private let servers: Mutex<[Process?]>

    init(size: Int = 3) throws {
        clientPorts = try (0..<size).map { _ in try LoopbackPort.free() }
        routePorts = try (0..<size).map { _ in try LoopbackPort.free() }
        storage = FileManager.default.temporaryDirectory.appending(path: "baton-nats-cluster-\(UUID().uuidString)")
        servers = Mutex(Array(repeating: nil, count: size))
        for node in 0..<size { try start(node) }
    }

    /// Every node's client URL, as `BATON_NATS_URL` takes them.
    var url: String { clientPorts.map { "nats://127.0.0.1:\($0)" }.joined(separator: ",") }

    static func name(_ node: Int) -> String { "node-\(node)" }

    func start(_ node: Int) throws {
        let routes = routePorts.indices.filter { $0 != node }.map { "nats://127.0.0.1:\(routePorts[$0])" }.joined(separator: ",")
        let process = try ReconnectTests.startServer(
            port: clientPorts[node],
            arguments: [
                "-js", "-sd", storage.appending(path: Self.name(node)).path, "--server_name", Self.name(node), "--cluster_name",
                "baton-test", "--cluster", "nats://127.0.0.1:\(routePorts[node])", "--routes", routes,
            ])
        servers.withLock { $0[node] = process }
    }

    /// SIGKILL: the node gets no chance to hand over its leaderships.
    func kill(_ node: Int) {
        guard
            let process = servers.withLock({ servers in
                defer { servers[node] = nil }
                return servers[node]
            })
        else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitForEnd()
    }

    func remove() {
        for node in clientPorts.indices { kill(node) }
        try? FileManager.default.removeItem(at: storage)
    }
}

extension EndToEndSuites {
    /// Sagas on a three-node JetStream cluster with every stream kept on all three, and the node
    /// that leads the command stream killed with SIGKILL in the middle of the load.
    @Suite("JetStream cluster", .serialized)
    struct NATSClusterTests {
        static let logger = Logger(label: "baton.test.cluster")

        @Test("a node of a three-node cluster killed under load: every transfer finishes, each leg is booked once, money is conserved")
        func nodeKilledUnderLoad() async throws {
            let cluster = try NATSCluster()
            defer { cluster.remove() }
            let batonDatabase = try await StoreFixture.createDatabase()
            let participantsDatabase = try await StoreFixture.createDatabase()
            // Short timeouts, so that a command or reply lost with the node is retried within the test.
            let definition = try MoneyConservationTests.fundsTransfer(timeout: 2000, fraudCheckAttempts: 5)

            try await StoreFixture.withClient(batonDatabase) { batonClient in
                try await StoreFixture.withClient(participantsDatabase) { participants in
                    let store = SagaStore(client: batonClient, logger: Self.logger)
                    try await store.migrate()
                    try await store.registerDefinition(definition, source: nil, now: .now)
                    let ledger = Ledger(client: participants, logger: Self.logger)
                    try await ledger.prepare()
                    let accounts = ["acc-1", "acc-2", "acc-3", "acc-4", "acc-poor"]
                    for account in accounts {
                        try await ledger.openAccount(account, currency: "EUR", balance: account == "acc-poor" ? 500 : 2_000_000)
                    }
                    let total = try await ledger.totalBalance()

                    var options = NATSConnection.Options(urlList: cluster.url, name: "engine")
                    options.reconnectInitialWait = .milliseconds(50)
                    options.reconnectMaxWait = .milliseconds(500)
                    let connection = try await NATSConnection.connect(options)
                    let jetStream = try JetStream(connection)
                    // The cluster elects its JetStream leader first: until then, creating streams fails.
                    let ready = ContinuousClock.now + .seconds(30)
                    while true {
                        do {
                            for stream in BatonStreams.all(replicas: 3) { try await jetStream.ensureStream(stream) }
                            break
                        } catch {
                            if ContinuousClock.now > ready { throw error }
                            try await Task.sleep(for: .milliseconds(250))
                        }
                    }
                    for participant in ["ledger", "fraud", "notifications", "audit"] {
                        try await jetStream.ensureConsumer(
                            stream: BatonStreams.commands.name, BatonStreams.participantConsumer(participant))
                    }
                    let runner = SagaRunner(store: store)

                    let url = participantsDatabase
                    let workers = MoneyConservationTests.Participants(
                        [
                            "ledger", "fraud", "notifications", "audit", "--nats-url", cluster.url, "--database-url",
                            "postgres://\(url.username)@\(url.host):\(url.port)/\(url.database)", "--ack-wait", "2",
                            "--metrics-listen", "127.0.0.1:\(try LoopbackPort.free())",
                        ])
                    try workers.start()
                    defer { workers.kill() }

                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await OutboxRelay(store: store, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await ReplyConsumer(runner: runner, jetStreams: .fixed(jetStream), logger: Self.logger).run() }
                        group.addTask { try await TimerScheduler(runner: runner, logger: Self.logger).run() }

                        var ids: [String] = []
                        var killed: String?
                        for number in 0..<150 {
                            let from = accounts[number % accounts.count]
                            let to = accounts[(number + 1) % accounts.count]
                            var amount = Int64(1 + number * 37 % 20_000)
                            if number % 10 == 0 { amount = 600_000 }  // large and round: stopped as fraud
                            if number % 10 == 1 { amount = 3_000_000 }  // more than any account holds
                            let input: JSONValue = [
                                "transfer_id": .string("t-\(number)"), "from_account": .string(from), "to_account": .string(to),
                                "amount": .integer(amount), "currency": "EUR",
                            ]
                            ids.append(try await runner.submit(workflow: "funds-transfer", input: input).record.saga.id)
                            if number == 50 {
                                // The leader of the command stream: its followers must elect another one.
                                let leader = try await jetStream.streamLeader(BatonStreams.commands.name)
                                let node = cluster.clientPorts.indices.first { NATSCluster.name($0) == leader } ?? 0
                                cluster.kill(node)
                                killed = NATSCluster.name(node)
                            }
                        }
                        Self.logger.info("cluster: killed \(killed ?? "nothing") under load")
                        let statuses = try await MoneyConservationTests.settle(ids, store: store)
                        try await MoneyConservationTests.check(ids, statuses, ledger: ledger, participants: participants, total: total)
                        // The stream still has a leader, and it is another node.
                        let leader = try await jetStream.streamLeader(BatonStreams.commands.name)
                        #expect(leader != nil && leader != killed)
                        group.cancelAll()
                        try await group.waitForAll()
                    }
                }
            }
        }
    }
}
