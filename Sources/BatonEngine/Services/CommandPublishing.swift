import BatonStore
import BatonTransport
import Logging

/// How `baton serve` gets queued commands to JetStream: a ``CommandDispatcher`` publishes each as
/// soon as the transaction that queued it commits (the ``SagaRunner`` hands them over), and an
/// ``OutboxRelay`` sweeps up, after a grace period, whatever the dispatcher missed (decision 0012).
public struct CommandPublishing: Sendable {
    public let dispatcher: CommandDispatcher
    public let relay: OutboxRelay

    /// - Parameters:
    ///   - store: The store the runner writes through, made with `wakesOutboxRelays: false`
    ///     (nothing needs waking: the dispatcher publishes, the relay sweeps on a timer).
    ///   - jetStreams: Where each batch gets its JetStream context (the process's ``NATSClient``).
    public init(store: SagaStore, jetStreams: JetStreamSource, metrics: EngineMetrics = EngineMetrics(), logger: Logger) {
        dispatcher = CommandDispatcher(store: store, jetStreams: jetStreams, metrics: metrics, logger: logger)
        var relay = OutboxRelay(store: store, jetStreams: jetStreams, metrics: metrics, logger: logger)
        relay.grace = OutboxRelay.sweepGrace
        relay.idlePoll = OutboxRelay.sweepGrace
        self.relay = relay
    }

    /// Runs the dispatcher and the relay until cancelled or shut down.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await dispatcher.run() }
            group.addTask { try await relay.run() }
            try await group.waitForAll()
        }
    }
}
