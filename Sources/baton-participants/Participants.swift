import ArgumentParser
import BatonClient
import BatonLogging
import BatonParticipants
import BatonStore
import BatonTelemetry
import BatonTransport
import BatonWorker
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// `baton-participants`: the demo participants as processes, and the ledger's back office.
@main
struct ParticipantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-participants",
        abstract: "Run Baton's demo participants and the Transactions and Payments services, and manage ledger accounts.",
        subcommands: [Run.self, OpenAccount.self, Balances.self])

    struct Connection: ParsableArguments {
        @Option(help: "The participants' PostgreSQL (each participant uses its own schema). Env: PARTICIPANTS_DATABASE_URL.")
        var databaseURL: String?

        func database() throws -> DatabaseURL {
            guard let text = databaseURL ?? ProcessInfo.processInfo.environment["PARTICIPANTS_DATABASE_URL"] else {
                throw ValidationError("no database: pass --database-url or set PARTICIPANTS_DATABASE_URL")
            }
            do { return try DatabaseURL(text) } catch { throw ValidationError(error.description) }
        }

        /// Runs `body` with a running client.
        func withClient(_ body: (PostgresClient) async throws -> Void) async throws {
            var quiet = Logger(label: "participants")
            quiet.logLevel = .error
            let client = PostgresClient(configuration: try database().clientConfiguration(), backgroundLogger: quiet)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                try await body(client)
                group.cancelAll()
            }
        }
    }

    /// `baton-participants run [NAME…]`: the workers (and the Transactions and Payments HTTP
    /// APIs), until SIGTERM.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run participants as workers until SIGTERM or SIGINT; transactions and payments also serve their HTTP APIs.")
        @Argument(help: "Which participants (default: all). One of \(Self.all.joined(separator: ", ")).")
        var names: [String] = Self.all
        @Option(help: "NATS URLs. Env: BATON_NATS_URL.") var natsURL: String?
        @Option(help: "Baton's HTTP API, where Transactions starts checkouts. Env: BATON_URL.") var batonURL: String?
        @Option(help: "Baton API token, if the server requires one. Env: BATON_TOKEN.") var batonToken: String?
        @Option(help: "The Transactions API's address. Env: TRANSACTIONS_LISTEN.") var transactionsListen: String?
        @Option(help: "The Payments API's address. Env: PAYMENTS_LISTEN.") var paymentsListen: String?
        @Option(help: "Where the workers serve /metrics and /healthz. Env: METRICS_LISTEN.") var metricsListen: String?
        @Option(help: "How long a KYC verification takes, in milliseconds.") var kycDelay: Int = 1500
        @Option(help: "How long JetStream waits for a command's ack or heartbeat before redelivering it, in seconds.")
        var ackWait: Int = 30
        @Option(help: "Fault injection, for demos and tests: the share (0 to 1) of commands answered late.")
        var injectSlowRate: Double = 0
        @Option(help: "Fault injection: how late a slow command is answered, in milliseconds.") var injectSlowDelay: Int = 0
        @OptionGroup var connection: Connection

        static let all = ["ledger", "fraud", "notifications", "audit", "users", "kyc", "transactions", "payments"]

        func run() async throws {
            // Before the first logger: a logger keeps the handler it was made with.
            let level = LogSetup.bootstrap()
            var info = Logger(label: "participants")
            info.logLevel = level
            let logger = info
            let environment = ProcessInfo.processInfo.environment
            guard let nats = natsURL ?? environment["BATON_NATS_URL"] else {
                throw ValidationError("no NATS: pass --nats-url or set BATON_NATS_URL")
            }
            if let unknown = names.first(where: { !Self.all.contains($0) }) {
                throw ValidationError("unknown participant '\(unknown)': expected \(Self.all.joined(separator: ", "))")
            }
            let transactionsAddress = try Self.address(transactionsListen ?? environment["TRANSACTIONS_LISTEN"] ?? "127.0.0.1:8081")
            let paymentsAddress = try Self.address(paymentsListen ?? environment["PAYMENTS_LISTEN"] ?? "127.0.0.1:8082")
            let metricsAddress = try Self.address(metricsListen ?? environment["METRICS_LISTEN"] ?? "127.0.0.1:9464", anyPort: true)
            let endpoint = WorkerMetricsEndpoint()
            let baton = BatonClient(
                base: batonURL ?? environment["BATON_URL"] ?? "http://127.0.0.1:8080", token: batonToken ?? environment["BATON_TOKEN"])

            let client = PostgresClient(configuration: try connection.database().clientConfiguration(), backgroundLogger: logger)
            let payments = Payments(client: client, logger: logger)
            let transactions = Transactions(client: client, baton: baton, logger: logger)
            let participants: [String: (handlers: WorkerHandlers, prepare: @Sendable (PostgresClient) async throws -> Void)] = [
                "ledger": (Ledger(client: client, logger: logger).handlers, { try await Ledger(client: $0, logger: logger).prepare() }),
                "fraud": (Fraud(client: client, logger: logger).handlers, { try await Fraud(client: $0, logger: logger).prepare() }),
                "notifications": (
                    Notifications(client: client, logger: logger).handlers,
                    { try await Notifications(client: $0, logger: logger).prepare() }
                ),
                "audit": (Audit(client: client, logger: logger).handlers, { try await Audit(client: $0, logger: logger).prepare() }),
                "users": (Users(client: client, logger: logger).handlers, { try await Users(client: $0, logger: logger).prepare() }),
                "kyc": (
                    KYC(client: client, delay: .milliseconds(kycDelay), logger: logger).handlers,
                    { try await KYC(client: $0, logger: logger).prepare() }
                ),
                "transactions": (
                    transactions.handlers, { try await Transactions(client: $0, baton: baton, logger: logger).prepare() }
                ),
                "payments": (payments.handlers, { try await Payments(client: $0, logger: logger).prepare() }),
            ]

            // Schemas first, on a client of their own, so that no command meets a missing table.
            try await connection.withClient { preparing in
                for name in names { try await participants[name]!.prepare(preparing) }
            }
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            // Before the first span; nil unless OTEL_* asks for traces. First, so that it stops last.
            do {
                if let telemetry = try Telemetry.bootstrap(serviceName: "baton-participants", logger: logger) {
                    services.append(.init(service: telemetry))
                }
            } catch {
                throw ValidationError("OpenTelemetry (OTEL_*): \(error)")
            }
            services.append(.init(service: client))
            let slowRate = injectSlowRate
            let slowDelay = Duration.milliseconds(injectSlowDelay)
            for name in names {
                var handlers = participants[name]!.handlers
                if slowRate > 0 {
                    handlers = handlers.intercepting { context, handler in
                        if Double.random(in: 0..<1) < slowRate {
                            context.logger.notice("fault injection: answering late", metadata: ["delay": "\(slowDelay)"])
                            try await Task.sleep(for: slowDelay)
                        }
                        return try await handler(context)
                    }
                }
                services.append(
                    .init(
                        service: Worker(
                            configuration: .init(
                                participant: name, nats: .init(urlList: nats, name: "participant-\(name)"), ackWait: .seconds(ackWait),
                                // A late answer must be late: heartbeats would keep the step alive.
                                heartbeats: slowRate == 0),
                            handlers: handlers, logger: logger, metrics: endpoint.workerMetrics)))
            }
            services.append(
                .init(
                    service: endpoint.service(host: metricsAddress.host, port: metricsAddress.port, logger: logger) { port in
                        // The port it really listens on (port 0 picks a free one).
                        FileHandle.standardOutput.write(
                            Data("baton-participants: metrics on http://\(metricsAddress.host):\(port)/metrics\n".utf8))
                    }))
            if names.contains("transactions") {
                services.append(
                    .init(
                        service: Application(
                            router: transactions.router(),
                            configuration: .init(
                                address: .hostname(transactionsAddress.host, port: transactionsAddress.port), serverName: "transactions"),
                            logger: logger)))
                print("baton-participants: Transactions API on http://\(transactionsAddress.host):\(transactionsAddress.port)")
            }
            if names.contains("payments") {
                // Its own NATS client, before it in the group: closed after the service has drained.
                let decisions = NATSClient(options: .init(urlList: nats, name: "payments-decisions"), logger: logger)
                services.append(.init(service: decisions))
                services.append(
                    .init(
                        service: PaymentsService(
                            payments: payments, host: paymentsAddress.host, port: paymentsAddress.port, nats: decisions,
                            signals: SagaSignals(client: baton),
                            logger: logger)))
                print("baton-participants: Payments API on http://\(paymentsAddress.host):\(paymentsAddress.port)")
            }
            var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            // As in baton serve: a drain longer than this is cancelled, so SIGTERM ends it within 15 s.
            group.maximumGracefulShutdownDuration = ShutdownDeadline.drain
            ShutdownDeadline.arm(logger: logger, process: "baton-participants")
            print("baton-participants: running \(names.joined(separator: ", "))")
            try await ServiceGroup(configuration: group).run()
        }

        /// `host:port`.
        /// - Parameter anyPort: Whether port 0 (a free one, printed once listening) is accepted.
        static func address(_ text: String, anyPort: Bool = false) throws -> (host: String, port: Int) {
            let lowest = anyPort ? 0 : 1
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (lowest...65535).contains(port)
            else {
                throw ValidationError("'\(text)' is not a host:port address with a port from \(lowest) to 65535, such as 127.0.0.1:9464")
            }
            return (String(text[..<colon]), port)
        }
    }

    /// `baton-participants open-account ID CURRENCY [BALANCE]`.
    struct OpenAccount: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "open-account", abstract: "Open a ledger account.")
        @Argument(help: "The account id.") var id: String
        @Argument(help: "ISO 4217 currency.") var currency: String
        @Argument(help: "Opening balance in minor units.") var balance: Int64 = 0
        @OptionGroup var connection: Connection

        func run() async throws {
            try await connection.withClient { client in
                let ledger = Ledger(client: client, logger: Logger(label: "ledger"))
                try await ledger.prepare()
                try await ledger.openAccount(id, currency: currency, balance: balance)
                print("opened \(id) with \(balance) \(currency)")
            }
        }
    }

    /// `baton-participants balances ID…`.
    struct Balances: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print ledger balances, and their total.")
        @Argument(help: "Account ids.") var ids: [String]
        @OptionGroup var connection: Connection

        func run() async throws {
            try await connection.withClient { client in
                let ledger = Ledger(client: client, logger: Logger(label: "ledger"))
                let width = max(12, ids.map(\.count).max() ?? 0)
                for id in ids {
                    let balance = try await ledger.balance(id).map { String($0) } ?? "no such account"
                    print("\(id.padding(toLength: width, withPad: " ", startingAt: 0)) \(balance)")
                }
                print("\("total".padding(toLength: width, withPad: " ", startingAt: 0)) \(try await ledger.totalBalance())")
            }
        }
    }
}
