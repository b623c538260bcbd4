import ArgumentParser
import BatonClient
import BatonCore
import BatonEngine
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// `baton-bench`: how fast Baton runs, measured beside `pgbench -N` on the same PostgreSQL
/// (`docs/performance.md`). A benchmark, never a test: it asserts nothing and prints figures.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-bench",
        abstract: "Measure Baton: sagas/s, latency, per-step overhead and memory, beside pgbench -N on the same PostgreSQL.",
        subcommands: [Run.self, Workers.self],
        defaultSubcommand: Run.self)

    /// `baton-bench workers`: the no-op participants, as a process of their own.
    struct Workers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the benchmark's no-op participants until SIGTERM.")
        @Option(help: "NATS URL.") var natsURL: String
        @Option(help: "Commands each participant handles at once.") var concurrency: Int = 128

        func run() async throws {
            var logger = Logger(label: "bench-workers")
            logger.logLevel = .warning
            let workers = BenchWorkflow.participants.map { participant in
                ServiceGroupConfiguration.ServiceConfiguration(
                    service: Worker(
                        configuration: .init(
                            participant: participant, nats: .init(urlList: natsURL, name: participant), concurrency: concurrency),
                        handlers: BenchWorkflow.handlers(for: participant), logger: logger))
            }
            try await ServiceGroup(configuration: .init(services: workers, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                .run()
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start baton serve, the no-op workers and a nats-server of its own, drive the load, and print the figures.",
            discussion: "Uses the PostgreSQL of BATON_DATABASE_URL (scripts/services env), in databases of its own (baton_bench*).")
        @Option(help: "Sagas per load phase.") var count = 2000
        @Option(help: "Sagas in flight at once.") var concurrency = 32
        @Option(help: "In the failing mix, every Nth saga fails at its last step and is compensated.") var failEvery = 10
        @Option(help: "Finished sagas to add before the scaled phase (0: skip it).") var preload = 0
        @Flag(
            name: .customLong("retention-phase"),
            help: """
                After the scaled phase, restart baton serve with BATON_RETENTION=30d and run a phase while it removes the \
                preloaded sagas.
                """)
        var retentionPhase = false
        @Option(help: "Timers due at once in the timer storm (0: skip it).") var timerStorm = 0
        @Option(help: "pgbench -N transactions per client (0: skip it).") var pgbenchTransactions = 2500
        @Option(help: "pgbench clients.") var pgbenchClients = 16
        @Flag(name: .customLong("skip-step-floor"), help: "Do not run the step floor (a step's rows in plain SQL through pgbench).")
        var skipStepFloor = false
        @Option(help: "baton serve's log level.") var serveLogLevel = "info"
        @Option(help: "Write the figures as JSON here too.") var output: String?
        @Flag(name: .customLong("skip-dbos"), help: "Do not run the DBOS Transact peer.") var skipDBOS = false
        @Option(help: "The Python with DBOS Transact installed (scripts/bench installs it).") var dbosPython =
            ".baton/python-dbos/bin/python3"
        @Option(help: "The DBOS peer's script.") var dbosScript = "scripts/peers/dbos_saga.py"

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard let adminText = environment["BATON_DATABASE_URL"] else {
                throw ValidationError("set BATON_DATABASE_URL (eval \"$(scripts/services env)\")")
            }
            let admin = try DatabaseURL(adminText)
            var benchURL = admin
            benchURL.database = "baton_bench"
            var pgbenchURL = admin
            pgbenchURL.database = "baton_bench_pgbench"
            var dbosURL = admin
            dbosURL.database = "baton_bench_dbos"
            let directory = try BenchWorkflow.write()
            let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            let baton = own.deletingLastPathComponent().appending(path: "baton")
            print("baton-bench: logs and workflows in \(directory.path)")

            var quiet = Logger(label: "bench")
            quiet.logLevel = .error
            try await Self.withClient(admin, logger: quiet) { client in
                for database in [benchURL.database, pgbenchURL.database, dbosURL.database] {
                    try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database) WITH (FORCE)"))
                    try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"))
                }
            }

            Children.stopOnSignals()
            let natsPort = try LoopbackPort.free()
            let nats = try ChildProcess(
                "nats-server", executable: URL(fileURLWithPath: "/usr/bin/env"),
                arguments: [
                    "nats-server", "-js", "-a", "127.0.0.1", "-p", String(natsPort), "-sd", directory.appending(path: "jetstream").path,
                ], log: directory.appending(path: "nats.log"))
            defer { nats.stop() }
            let natsURL = "nats://127.0.0.1:\(natsPort)"
            let httpPort = try LoopbackPort.free()
            func startServe(_ environment: [String: String] = [:], log: String = "serve.log") throws -> ChildProcess {
                try ChildProcess(
                    "baton serve", executable: baton,
                    arguments: [
                        "serve", "--database-url", benchURL.text, "--nats-url", natsURL, "--http", "127.0.0.1:\(httpPort)", "--workflows",
                        directory.path,
                    ], environment: ["BATON_LOG_LEVEL": serveLogLevel].merging(environment) { $1 }, log: directory.appending(path: log))
            }
            var serve = try startServe()
            defer { serve.stop() }
            var workers: ChildProcess? = try ChildProcess(
                "workers", executable: own, arguments: ["workers", "--nats-url", natsURL], log: directory.appending(path: "workers.log"))
            defer { workers?.stop() }
            let api = BatonClient(base: "http://127.0.0.1:\(httpPort)")
            try await Self.waitUntilReady(api)

            var report = Report(count: count, concurrency: concurrency, failEvery: failEvery)
            let memory = PeakMemory()
            try await Self.withClient(benchURL, logger: quiet) { database in
                let driver = LoadDriver(api: api.base, database: database, workflow: "bench-3")
                func phase(_ name: String, failEvery: Int) async throws -> PhaseFigures {
                    memory.start(serve)
                    defer { memory.stop() }
                    let cpuBefore = CPUAccounting.snapshot(serve: serve.pid, workers: workers?.pid, nats: nats.pid)
                    try await driver.run(phase: name, count: count, concurrency: concurrency, failEvery: failEvery)
                    let cpuAfter = CPUAccounting.snapshot(serve: serve.pid, workers: workers?.pid, nats: nats.pid)
                    var figures = try await PhaseFigures.read(phase: name, peakRSSMiB: memory.peakMiB, from: database)
                    figures.cpuMillisecondsPerStep = CPUAccounting.perStep(from: cpuBefore, to: cpuAfter, steps: figures.legs)
                    print(figures.line)
                    print(
                        "               CPU ms per step: "
                            + figures.cpuMillisecondsPerStep.sorted { $0.key < $1.key }.map {
                                "\($0.key) \(String(format: "%.2f", $0.value))"
                            }
                            .joined(separator: ", "))
                    return figures
                }
                print("baton-bench: warming up")
                try await driver.run(phase: "warmup", count: min(500, count), concurrency: concurrency, failEvery: 0)
                print(PhaseFigures.header)
                report.phases.append(try await phase("empty", failEvery: 0))
                report.phases.append(try await phase("failing-mix", failEvery: failEvery))

                // Now, while baton serve is idle: the peer and pgbench must not share the cores with it.
                if !skipDBOS {
                    print("baton-bench: the same saga in DBOS Transact (\(dbosScript)), \(concurrency) in flight")
                    report.dbos = try DBOSPeer.run(
                        python: dbosPython, script: dbosScript, database: dbosURL, count: count, concurrency: concurrency,
                        failEvery: failEvery, log: directory.appending(path: "dbos.log"))
                    for phase in report.dbos ?? [] { print(phase.line) }
                }
                if pgbenchTransactions > 0 {
                    print("baton-bench: pgbench -N, \(pgbenchClients) clients, \(pgbenchTransactions) transactions each")
                    let postgresBefore = CPUAccounting.postgresSeconds()
                    report.pgbenchTPS = try PGBench.tps(
                        url: pgbenchURL, clients: pgbenchClients, transactions: pgbenchTransactions,
                        log: directory.appending(path: "pgbench.log"))
                    report.pgbenchPostgresCPUMilliseconds =
                        (CPUAccounting.postgresSeconds() - postgresBefore) * 1000 / Double(pgbenchClients * pgbenchTransactions)
                    print("baton-bench: pgbench -N: \(String(format: "%.0f", report.pgbenchTPS ?? 0)) tps")
                    if !skipStepFloor {
                        print("baton-bench: the step floor, \(pgbenchClients) clients, \(pgbenchTransactions) steps each")
                        var floorURL = admin
                        floorURL.database = "baton_bench_floor"
                        try await Self.withClient(admin, logger: quiet) { adminClient in
                            report.stepFloor = try await StepFloor.run(
                                url: floorURL, admin: adminClient, clients: pgbenchClients, transactions: pgbenchTransactions,
                                directory: directory, logger: quiet)
                        }
                        print("baton-bench: step floor: \(String(format: "%.0f", report.stepFloor?.tps ?? 0)) steps/s")
                    }
                }

                if preload > 0 {
                    let took = try await ContinuousClock().measure { try await Preload.finishedSagas(preload, into: database) }
                    print("baton-bench: added \(preload) finished sagas in \(took.formatted(.units(allowed: [.seconds])))")
                    report.preloaded = preload
                    report.phases.append(try await phase("scaled", failEvery: 0))
                    if retentionPhase {
                        // Every preloaded saga finished 37 to 60 days ago: all of them are due.
                        serve.stop()
                        serve = try startServe(["BATON_RETENTION": "30d"], log: "serve-retention.log")
                        try await Self.waitUntilReady(api)
                        let before = try await RetentionFigures.preloadedLeft(database)
                        let sweeping = try await phase("sweeping", failEvery: 0)
                        report.phases.append(sweeping)
                        let after = try await RetentionFigures.preloadedLeft(database)
                        report.retention = RetentionFigures(
                            removedDuringPhase: before - after, phaseSeconds: sweeping.seconds, left: after)
                        print(report.retention!.line)
                    }
                }

                if timerStorm > 0 {
                    workers?.stop()
                    workers = nil
                    report.storm = try await TimerStorm.run(
                        timers: timerStorm, api: api, database: database, serve: serve, concurrency: concurrency)
                    print(report.storm!.line)
                }
            }
            print(report.summary)
            if let output {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: output))
            }
        }

        static func withClient(_ url: DatabaseURL, logger: Logger, _ body: (PostgresClient) async throws -> Void) async throws {
            let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                try await body(client)
                group.cancelAll()
            }
        }

        static func waitUntilReady(_ api: BatonClient) async throws {
            for _ in 0..<300 {
                if (try? await api.get("/readyz")) != nil { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw BenchError("baton serve did not become ready at \(api.base)")
        }
    }
}
