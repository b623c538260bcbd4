import ArgumentParser
import BatonAPI
import BatonCore
import BatonEngine
import BatonLogging
import BatonStore
import BatonTelemetry
import BatonTransport
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// `baton serve`: the orchestrator and its HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the orchestrator and its HTTP API.",
        discussion: """
            Every option can also come from the environment (BATON_DATABASE_URL, BATON_NATS_URL,
            BATON_HTTP_ADDRESS, BATON_WORKFLOWS, BATON_BODY_LIMIT, BATON_AUTH_FILE); a flag wins over
            the environment. Run as many as you like against one database and NATS: there is no leader.
            SIGTERM or SIGINT drains in-flight work, then exits.

            Without credentials (--auth) the API is open to whoever reaches it, so it listens on
            loopback only; any other address needs --insecure-no-auth.
            """
    )

    @Option(help: "PostgreSQL URL (postgres://user:password@host:port/database). Env: BATON_DATABASE_URL.")
    var databaseURL: String?

    @Option(help: "NATS URLs, comma-separated. Env: BATON_NATS_URL.")
    var natsURL: String?

    @Option(help: "HTTP address to listen on, host:port (port 0 picks a free one). Env: BATON_HTTP_ADDRESS.")
    var http: String?

    @Option(help: "Workflow definitions to register at start: files or directories. Env: BATON_WORKFLOWS.")
    var workflows: [String] = []

    @Option(help: "Largest request body accepted, in bytes. Env: BATON_BODY_LIMIT.")
    var bodyLimit: Int?

    @Option(help: "Credentials file (YAML or JSON): hashed API tokens with scopes, and/or a JWKS for JWTs. Env: BATON_AUTH_FILE.")
    var auth: String?

    @Flag(help: "Serve the API without credentials on a non-loopback address: anyone who reaches it may do anything.")
    var insecureNoAuth = false

    @Option(
        help: """
            How long finished sagas are kept: an age for all (30d), rules by workflow (funds-transfer=365d), \
            or forever, comma-separated (default: forever). Env: BATON_RETENTION.
            """)
    var retention: String?

    @Option(help: "Archive each saga retention removes to JSON Lines files in this directory first. Env: BATON_ARCHIVE_DIR.")
    var archive: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        // Before the first logger: a logger keeps the handler it was made with.
        let level = LogSetup.bootstrap(environment: environment)
        var logger = Logger(label: "baton")
        logger.logLevel = level

        guard let databaseText = databaseURL ?? environment["BATON_DATABASE_URL"] else {
            throw ValidationError("no database: pass --database-url or set BATON_DATABASE_URL")
        }
        guard let natsText = natsURL ?? environment["BATON_NATS_URL"] else {
            throw ValidationError("no NATS: pass --nats-url or set BATON_NATS_URL")
        }
        let database: DatabaseURL
        do { database = try DatabaseURL(databaseText) } catch { throw ValidationError(error.description) }
        let address = http ?? environment["BATON_HTTP_ADDRESS"] ?? "127.0.0.1:8080"
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw ValidationError("the HTTP address must be host:port, got '\(address)'")
        }
        let host = String(address[..<colon])
        let limit = bodyLimit ?? environment["BATON_BODY_LIMIT"].flatMap(Int.init) ?? 1 << 20
        var access = APIAccessPolicy.open
        if let file = auth ?? environment["BATON_AUTH_FILE"] {
            do { access = try await APIAccessPolicy.load(file: file) } catch { throw ValidationError("\(error)") }
        }
        if access.isOpen && !Self.isLoopback(host) && !insecureNoAuth && environment["BATON_INSECURE_NO_AUTH"] != "true" {
            throw ValidationError(
                "refusing to serve the API without credentials on '\(address)': anyone who reaches it could register workflows and move money. Configure --auth (docs/operations.md, Security), listen on 127.0.0.1, or pass --insecure-no-auth"
            )
        }

        let paths = workflows.isEmpty ? (environment["BATON_WORKFLOWS"].map { [$0] } ?? []) : workflows
        var api = try Self.limits(from: environment)
        api.bodyLimit = limit
        api.access = access
        var environmentWithFlags = environment
        if let retention { environmentWithFlags["BATON_RETENTION"] = retention }
        if let archive { environmentWithFlags["BATON_ARCHIVE_DIR"] = archive }
        try await Self.serve(
            database: database, natsURL: natsText, host: host, port: port, api: api, definitions: try Self.definitions(paths),
            environment: environmentWithFlags, logger: logger)
    }

    /// The retention policy of `BATON_RETENTION`, `BATON_ARCHIVE_DIR`, `BATON_RETENTION_BATCH` and
    /// `BATON_RETENTION_INTERVAL` (docs/operations.md, Retention).
    static func retention(from environment: [String: String]) throws -> RetentionPolicy {
        var policy = RetentionPolicy()
        if let text = environment["BATON_RETENTION"], !text.isEmpty {
            do { policy = try RetentionPolicy(parsing: text) } catch {
                throw ValidationError("BATON_RETENTION (--retention): \(error.description); for example 30d or 30d,funds-transfer=365d")
            }
        }
        if let directory = environment["BATON_ARCHIVE_DIR"], !directory.isEmpty {
            guard policy.isActive else {
                throw ValidationError(
                    "BATON_ARCHIVE_DIR (--archive) is set but retention keeps every saga forever: set BATON_RETENTION too")
            }
            let archive = SagaArchive(directory: URL(fileURLWithPath: directory))
            do { try archive.prepare() } catch {
                throw ValidationError("BATON_ARCHIVE_DIR (--archive): cannot use \(directory): \(error.localizedDescription)")
            }
            policy.archive = archive.directory
        }
        if let text = environment["BATON_RETENTION_BATCH"] {
            guard let size = Int(text), (1...10_000).contains(size) else {
                throw ValidationError("BATON_RETENTION_BATCH must be a whole number from 1 to 10000, got '\(text.prefix(40))'")
            }
            policy.batchSize = size
        }
        if let text = environment["BATON_RETENTION_INTERVAL"] {
            guard let interval = try? SagaDuration.parse(text), interval.milliseconds >= 100 else {
                throw ValidationError("BATON_RETENTION_INTERVAL must be a duration of at least 100ms, such as 1m, got '\(text.prefix(40))'")
            }
            policy.interval = .milliseconds(interval.milliseconds)
        }
        return policy
    }

    /// Whether `host` only accepts connections from this machine.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// The API's limits, each overridable by an environment variable (docs/operations.md, Limits).
    static func limits(from environment: [String: String]) throws -> BatonAPI.Configuration {
        var api = BatonAPI.Configuration()
        func integer(_ name: String, _ target: inout Int) throws {
            guard let text = environment[name] else { return }
            guard let value = Int(text), value > 0 else { throw ValidationError("\(name) must be a positive whole number, got '\(text)'") }
            target = value
        }
        func duration(_ name: String, _ target: inout Duration) throws {
            guard let text = environment[name] else { return }
            guard let value = SagaDuration(parsing: text), value > .zero else {
                throw ValidationError("\(name) must be a duration such as 30s, got '\(text)'")
            }
            target = .milliseconds(value.milliseconds)
        }
        try integer("BATON_MAX_DEFINITION_BYTES", &api.definitionLimits.maximumBytes)
        try integer("BATON_MAX_STEPS", &api.definitionLimits.maximumSteps)
        try integer("BATON_MAX_TEMPLATE_BYTES", &api.definitionLimits.maximumTemplateBytes)
        try integer("BATON_MAX_INPUT_BYTES", &api.maximumInputBytes)
        try integer("BATON_MAX_HEADER_BYTES", &api.http.maximumHeaderBytes)
        try duration("BATON_HTTP_IDLE_TIMEOUT", &api.http.idleTimeout)
        try duration("BATON_HTTP_BODY_TIMEOUT", &api.http.bodyTimeout)
        try duration("BATON_MAX_WAIT", &api.maximumWait)
        try duration("BATON_REQUEST_TIMEOUT", &api.requestTimeout)
        if let origin = environment["BATON_CORS_ORIGIN"], !origin.isEmpty {
            guard let url = URL(string: origin), url.scheme == "https" || url.scheme == "http", url.host != nil, url.path.isEmpty else {
                throw ValidationError("BATON_CORS_ORIGIN must be an origin such as https://console.example.com, got '\(origin)'")
            }
            api.corsOrigin = origin
        }
        return api
    }

    /// `BATON_NATS_STREAM_REPLICAS`: on how many servers of a JetStream cluster each stream is
    /// kept (docs/scaling.md). JetStream allows 1 to 5.
    static func streamReplicas(from environment: [String: String]) throws -> Int {
        guard let text = environment["BATON_NATS_STREAM_REPLICAS"] else { return 1 }
        guard let replicas = Int(text), (1...5).contains(replicas) else {
            throw ValidationError("BATON_NATS_STREAM_REPLICAS must be 1 to 5 (3 in a three-server cluster), got '\(text)'")
        }
        return replicas
    }

    /// Reads the workflow definitions to register at start; any invalid one stops start-up.
    static func definitions(_ paths: [String]) throws -> [(definition: WorkflowDefinition, source: String)] {
        var definitions: [(definition: WorkflowDefinition, source: String)] = []
        guard !paths.isEmpty else { return definitions }
        for result in WorkflowFiles.load(try WorkflowFiles.expand(paths)) {
            switch result.outcome {
            case .success(let definition):
                definitions.append((definition, try String(contentsOfFile: result.file, encoding: .utf8)))
            case .failure(let error):
                throw ValidationError("\(result.file) is not a valid workflow:\n\(error)")
            }
        }
        return definitions
    }

    /// Runs the server until SIGTERM or SIGINT, then drains it.
    static func serve(
        database: DatabaseURL,
        natsURL: String,
        host: String,
        port: Int,
        api: BatonAPI.Configuration,
        definitions: [(definition: WorkflowDefinition, source: String)],
        definitionChanges: AsyncStream<[(definition: WorkflowDefinition, source: String)]>? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger,
        beforeForcedExit: @escaping @Sendable () -> Void = {}
    ) async throws {
        // Before the first span; nil unless OTEL_* asks for traces.
        let telemetry: (any Service)?
        do { telemetry = try Telemetry.bootstrap(serviceName: "baton", environment: environment, logger: logger) } catch {
            throw ValidationError("OpenTelemetry (OTEL_*): \(error)")
        }
        var configuration = BatonServer.Configuration(host: host, port: port, api: api, definitions: definitions)
        configuration.definitionChanges = definitionChanges
        configuration.retention = try retention(from: environment)
        if let text = environment["BATON_MAX_REPLY_BYTES"] {
            guard let bytes = Int(text), bytes > 0 else {
                throw ValidationError("BATON_MAX_REPLY_BYTES must be a positive whole number, got '\(text)'")
            }
            configuration.maximumReplyBytes = bytes
        }
        configuration.streamReplicas = try streamReplicas(from: environment)
        if let text = environment["BATON_DATABASE_WAIT"] {
            guard let wait = try? SagaDuration.parse(text), wait.milliseconds > 0 else {
                throw ValidationError("BATON_DATABASE_WAIT must be a duration such as 15s or 2m, got '\(text)'")
            }
            configuration.databaseWait = .milliseconds(wait.milliseconds)
        }
        let client = PostgresClient(configuration: database.clientConfiguration(), backgroundLogger: logger)
        let nats = NATSClient(options: BatonServer.natsOptions(.init(urlList: natsURL, name: "baton-serve")), logger: logger)
        let server = BatonServer(
            client: client,
            nats: nats,
            configuration: configuration,
            logger: logger,
            onListening: { port in
                // Scripts and tests wait for this line to know where the server listens.
                FileHandle.standardOutput.write(Data("baton serve: listening on http://\(host):\(port)\n".utf8))
                FileHandle.standardOutput.write(Data("baton serve: web console at http://\(host):\(port)/ui\n".utf8))
            }
        )
        var group = ServiceGroupConfiguration(
            // Started in this order and shut down in the reverse: the server drains first, while
            // its database and NATS connections are still open.
            // The exporter first, so that it stops last and flushes the spans of the drain.
            services: (telemetry.map { [.init(service: $0)] } ?? []) + [
                .init(service: client),
                .init(service: nats),
                .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A drain that outlasts this (a long poll, a dependency that does not answer) is cancelled:
        // SIGTERM ends the process within 15 s (docs/operations.md, Shutdown), whatever it waits for;
        // the deadline holds even when a cancelled service does not return.
        group.maximumGracefulShutdownDuration = ShutdownDeadline.drain
        ShutdownDeadline.arm(logger: logger, process: "baton serve", beforeExit: beforeForcedExit)
        try await ServiceGroup(configuration: group).run()
    }
}
