import BatonCore
import BatonEngine
import BatonStore
import BatonTransport
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// One `baton serve` process: the HTTP API and the engine's services (outbox relay, reply
/// consumer, durable scheduler) over one database and one NATS. Any number of them can run side
/// by side; none is a leader.
///
/// Start-up: migrate the schema, register the workflow definitions given, create the streams on
/// NATS, then run every service until graceful shutdown, which drains them. The database and NATS
/// clients are services of their own: run them in the same group, before this one, so that they
/// close only after it has drained.
public struct BatonServer: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var api: BatonAPI.Configuration
        /// Definitions to register at start (the contents of `workflows/`), with their source text.
        public var definitions: [(definition: WorkflowDefinition, source: String)]
        /// The largest reply accepted (its step output is stored); larger ones are dead-lettered.
        public var maximumReplyBytes = 256 * 1024
        /// On how many servers of a JetStream cluster each stream is kept (docs/scaling.md).
        public var streamReplicas = 1
        /// How long to wait at start for the database to answer before giving up with a clear error.
        public var databaseWait: Duration = .seconds(15)
        /// Definitions changed while the server runs, each batch registered as it arrives (`baton
        /// dev` watching `workflows/`); with ``BatonAPI/Configuration/replacesUnusedVersions``, a
        /// version no saga has run takes the new content.
        public var definitionChanges: AsyncStream<[(definition: WorkflowDefinition, source: String)]>?
        /// Which finished sagas to remove, and where to archive them (`docs/operations.md`, Retention).
        public var retention = RetentionPolicy()

        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            api: BatonAPI.Configuration = .init(),
            definitions: [(definition: WorkflowDefinition, source: String)] = []
        ) {
            self.host = host
            self.port = port
            self.api = api
            self.definitions = definitions
        }
    }

    let client: PostgresClient
    let nats: NATSClient
    let configuration: Configuration
    let logger: Logger
    let onListening: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - client: The database client; run it in the same service group, before this service.
    ///   - nats: The NATS client (its options with ``BatonServer/natsOptions(_:)``); run it in the
    ///     same service group, before this service.
    ///   - onListening: Called with the HTTP port once the server listens (port 0 picks a free one).
    public init(
        client: PostgresClient,
        nats: NATSClient,
        configuration: Configuration,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.client = client
        self.nats = nats
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
    }

    /// The options of the orchestrator's NATS connection: its own inbox prefix, so that NATS
    /// permissions can tell its requests from participants' (docs/operations.md, Security).
    public static func natsOptions(_ options: NATSConnection.Options) -> NATSConnection.Options {
        var options = options
        options.inboxPrefix = options.inboxPrefix ?? BatonStreams.orchestratorInboxPrefix
        return options
    }

    public func run() async throws {
        let store = SagaStore(client: client, logger: logger)
        try await migrate(store)
        for (definition, source) in configuration.definitions {
            try await register(definition, source: source, in: store)
        }
        // The API starts even while NATS is away (commands wait in the outbox); the streams are
        // created as soon as it answers. Waiting for NATS must end on SIGTERM too (graceful shutdown
        // cancels the wait).
        let nats = self.nats
        let replicas = configuration.streamReplicas
        let ready = try await cancelWhenGracefulShutdown { () async throws -> Bool in
            while true {
                do {
                    let jetStream = try await nats.jetStream()
                    for stream in BatonStreams.all(replicas: replicas) { try await jetStream.ensureStream(stream) }
                    return true
                } catch {
                    if Task.isCancelled || error is NATSClientStopped { return false }
                    logger.warning(
                        "cannot create the JetStream streams yet; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        guard ready == true else {
            logger.info("baton serve stopped before NATS was ready")
            return
        }
        // Each participant's consumer is made here, so that a participant's NATS user needs no
        // right to manage consumers (docs/operations.md, Security); one already there is left as
        // its participant configured it.
        let provision: @Sendable ([String]) async -> Void = { participants in
            for participant in Set(participants).sorted() {
                do {
                    try await nats.jetStream().ensureConsumer(
                        stream: BatonStreams.commands.name, BatonStreams.participantConsumer(participant), updateExisting: false)
                } catch {
                    logger.warning(
                        "cannot create a participant's consumer; its workers will",
                        metadata: ["participant": "\(participant)", "error": "\(error)"])
                }
            }
        }
        await provision((try? await store.participants()) ?? [])
        let registry = PrometheusCollectorRegistry()
        let metrics = EngineMetrics.prometheus(registry)
        // The runner publishes what each commit queued itself: no outbox wake-ups needed.
        let engineStore = SagaStore(client: client, logger: logger, wakesOutboxRelays: false)
        let jetStreams = JetStreamSource.client(nats)
        let publishing = CommandPublishing(store: engineStore, jetStreams: jetStreams, metrics: metrics, logger: logger)
        let runner = SagaRunner(store: engineStore, dispatcher: publishing.dispatcher, metrics: metrics, logger: logger)
        let api = BatonAPI(
            store: engineStore, runner: runner, configuration: configuration.api, metrics: registry,
            onRegistered: { definition in await provision(definition.participants) },
            messaging: .jetStream(nats),
            readiness: {
                let postgres = await store.isReachable()
                return ["postgres": postgres, "nats": nats.currentConnection?.state == .connected]
            })
        let onListening = self.onListening
        let maximumReplyBytes = configuration.maximumReplyBytes
        let application = Application(
            router: api.router(),
            server: configuration.api.http.server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "baton"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await publishing.run() }
            group.addTask {
                var replies = ReplyConsumer(runner: runner, jetStreams: jetStreams, logger: logger)
                replies.maximumReplyBytes = maximumReplyBytes
                try await replies.run()
            }
            group.addTask { try await TimerScheduler(runner: runner, logger: logger).run() }
            group.addTask { try await application.runService() }
            group.addTask { await cancelWhenGracefulShutdown { await api.watchParticipants() } }
            if let changes = configuration.definitionChanges {
                group.addTask {
                    await cancelWhenGracefulShutdown {
                        for await batch in changes {
                            for (definition, source) in batch {
                                do {
                                    if try await register(definition, source: source, in: store) {
                                        runner.forgetDefinition(name: definition.name, version: definition.version)
                                        await provision(definition.participants)
                                    }
                                } catch {
                                    logger.warning(
                                        "workflow not registered",
                                        metadata: [
                                            "workflow": "\(definition.name) v\(definition.version)",
                                            "error": "\(StoreErrors.describe(error))",
                                        ])
                                }
                            }
                        }
                    }
                }
            }
            if configuration.retention.isActive {
                let sweeper = RetentionSweeper(store: engineStore, policy: configuration.retention, metrics: metrics, logger: logger)
                group.addTask { try await sweeper.run() }
            }
            try await group.waitForAll()
        }
        logger.info("baton serve stopped")
    }

    /// Registers one definition, saying so in the log when it is new or replaced.
    /// - Returns: Whether the version's content changed (new, or replaced).
    @discardableResult
    func register(_ definition: WorkflowDefinition, source: String, in store: SagaStore) async throws -> Bool {
        let workflow: Logger.MetadataValue = "\(definition.name) v\(definition.version)"
        switch try await store.registerDefinition(
            definition, source: source, now: .now, replacingUnused: configuration.api.replacesUnusedVersions)
        {
        case .registered:
            logger.info("workflow registered", metadata: ["workflow": workflow])
            return true
        case .replaced:
            logger.info("workflow replaced: no saga had run this version", metadata: ["workflow": workflow])
            return true
        case .alreadyRegistered:
            return false
        }
    }

    /// Migrates the schema, waiting for the database at most ``Configuration/databaseWait``: a
    /// database that does not answer ends the start with what was tried and why it failed, not
    /// with the connection pool's own error a minute later.
    func migrate(_ store: SagaStore) async throws {
        let limit = configuration.databaseWait
        let outcome = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    _ = try await store.migrate()
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .success?: return
        case .failure(let error)?:
            if error is CancellationError || Task.isCancelled { throw error }
            throw DatabaseUnreachable(description: "the database cannot be migrated: \(StoreErrors.describe(error))")
        case nil:
            throw DatabaseUnreachable(
                description:
                    "the database did not answer within \(limit) (is PostgreSQL running, and is BATON_DATABASE_URL or --database-url right?)"
            )
        }
    }
}

/// The database could not be reached or migrated at start.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public var description: String
}
