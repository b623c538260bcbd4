import ArgumentParser
import BatonParticipants
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// `baton-participants`: the demo participants as processes, and the ledger's back office.
@main
struct ParticipantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-participants",
        abstract: "Run Baton's demo participants (ledger, fraud, notifications, audit) and manage ledger accounts.",
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

    /// `baton-participants run [NAME…]`: the workers, until SIGTERM.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run participants as workers until SIGTERM or SIGINT.")
        @Argument(help: "Which participants (default: all four).") var names: [String] = ["ledger", "fraud", "notifications", "audit"]
        @Option(help: "NATS URLs. Env: BATON_NATS_URL.") var natsURL: String?
        @OptionGroup var connection: Connection

        func run() async throws {
            var logger = Logger(label: "participants")
            logger.logLevel = .info
            guard let nats = natsURL ?? ProcessInfo.processInfo.environment["BATON_NATS_URL"] else {
                throw ValidationError("no NATS: pass --nats-url or set BATON_NATS_URL")
            }
            let client = PostgresClient(configuration: try connection.database().clientConfiguration(), backgroundLogger: logger)
            let ledger = Ledger(client: client, logger: logger)
            let fraud = Fraud(client: client, logger: logger)
            let notifications = Notifications(client: client, logger: logger)
            let audit = Audit(client: client, logger: logger)
            let available: [String: WorkerHandlers] = [
                "ledger": ledger.handlers, "fraud": fraud.handlers, "notifications": notifications.handlers, "audit": audit.handlers,
            ]
            var workers: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: client)]
            for name in names {
                guard let handlers = available[name] else {
                    throw ValidationError("unknown participant '\(name)': expected \(available.keys.sorted().joined(separator: ", "))")
                }
                workers.append(
                    .init(
                        service: Worker(
                            configuration: .init(participant: name, nats: .init(urlList: nats, name: "participant-\(name)")),
                            handlers: handlers, logger: logger)))
            }
            // Schemas first, on a client of their own, so that no command meets a missing table.
            try await connection.withClient { preparing in
                let logger = Logger(label: "participants")
                try await Ledger(client: preparing, logger: logger).prepare()
                try await Fraud(client: preparing, logger: logger).prepare()
                try await Notifications(client: preparing, logger: logger).prepare()
                try await Audit(client: preparing, logger: logger).prepare()
            }
            let group = ServiceGroup(
                configuration: .init(services: workers, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            print("baton-participants: running \(names.joined(separator: ", "))")
            try await group.run()
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
                for id in ids {
                    let balance = try await ledger.balance(id).map { String($0) } ?? "no such account"
                    print("\(id.padding(toLength: 12, withPad: " ", startingAt: 0)) \(balance)")
                }
                print("\("total".padding(toLength: 12, withPad: " ", startingAt: 0)) \(try await ledger.totalBalance())")
            }
        }
    }
}
