import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Publishes the commands a transition queued as soon as its transaction commits, in the process
/// that committed it, and marks them published.
///
/// This takes the outbox relay off the common path (decision 0012). The relay went through a
/// `NOTIFY`, a wake-up and a claiming transaction of its own before each publish; `baton-bench`
/// measured that hop as over half of a step's unloaded round trip. The outbox stays the source of
/// truth: a command this dispatcher does not publish (NATS is down, the process dies, too many are
/// waiting) or does not mark stays unpublished, and an ``OutboxRelay`` with a grace period
/// (``OutboxRelay/grace``) publishes it. A command published twice (marked by neither before the
/// relay took it) is dropped by JetStream's deduplication on its `Nats-Msg-Id`.
///
/// Give it to the ``SagaRunner`` and run it as a service.
public final class CommandDispatcher: Service {
    let store: SagaStore
    let jetStreams: JetStreamSource
    let metrics: EngineMetrics
    let logger: Logger
    /// Commands waiting beyond this are left to the relay: waiting here costs memory, and while
    /// NATS is down they would only pile up.
    public let maximumWaiting: Int

    private let waiting = Mutex<[OutboxMessage]>([])
    private let doorbell = Doorbell()

    /// - Parameters:
    ///   - store: The store to mark published rows in.
    ///   - jetStreams: Where each batch gets its JetStream context (the process's ``NATSClient``).
    public init(
        store: SagaStore, jetStreams: JetStreamSource, metrics: EngineMetrics = EngineMetrics(), maximumWaiting: Int = 10_000,
        logger: Logger
    ) {
        self.store = store
        self.jetStreams = jetStreams
        self.metrics = metrics
        self.maximumWaiting = maximumWaiting
        self.logger = logger
    }

    /// Takes commands a committed write queued, to publish them. Returns at once: it runs on the
    /// writer's task. Nothing is lost if it drops them (too many are waiting): they are in the
    /// outbox, and the relay publishes them later.
    public func commandsQueued(_ messages: [OutboxMessage]) {
        let accepted = waiting.withLock { waiting in
            guard waiting.count + messages.count <= maximumWaiting else { return false }
            waiting.append(contentsOf: messages)
            return true
        }
        if accepted { doorbell.ring() }
    }

    /// Commands queued and not yet taken for publishing (for tests).
    var waitingCount: Int { waiting.withLock { $0.count } }

    /// Takes every command waiting, in the order they were queued.
    func takeWaiting() -> [OutboxMessage] {
        waiting.withLock { waiting in
            defer { waiting.removeAll(keepingCapacity: true) }
            return waiting
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.doorbell.wait()
                let batch = self.takeWaiting()
                if !batch.isEmpty { await self.dispatch(batch) }
            }
        }
    }

    /// Publishes a batch, then marks what was acknowledged in one statement.
    func dispatch(_ batch: [OutboxMessage]) async {
        let published = await publish(batch)
        guard !published.isEmpty else { return }
        do {
            try await store.markPublished(published, now: .now)
        } catch {
            // The relay publishes them again; JetStream drops the duplicates.
            logger.warning(
                "published commands not marked; the relay will resend them", metadata: ["error": "\(StoreErrors.describe(error))"])
        }
    }

    /// Publishes every command of a batch at once, collecting the acknowledgements as they come
    /// (``BatonTransport/JetStream/publish(batch:timeout:)``). Their order is not kept, nor need it
    /// be: commands of one saga in one batch come from different transitions (a retry after a
    /// timeout, say), and each carries its attempt, by which the state machine fences replies.
    /// - Returns: The ids of the rows JetStream acknowledged.
    private func publish(_ batch: [OutboxMessage]) async -> [Int64] {
        let jetStream: JetStream
        do {
            jetStream = try await jetStreams.jetStream()
        } catch {
            // Shutting down: what is left goes out with the next process's relay.
            logger.info("commands left to the relay", metadata: ["commands": "\(batch.count)", "error": "\(error)"])
            return []
        }
        let started = Date.now
        let results = await jetStream.publish(batch: batch.map(\.command.outgoing))
        var published: [Int64] = []
        var failures = 0
        for (message, result) in zip(batch, results) {
            switch result {
            case .success:
                metrics.commandPublished(createdAt: message.createdAt)
                EngineTracing.published(message.command, since: started, failure: nil)
                published.append(message.id)
            case .failure(let error):
                EngineTracing.published(message.command, since: started, failure: error)
                failures += 1
                // One line per batch, not per command: while NATS is away, every one fails.
                if failures == 1 {
                    logger.warning(
                        "commands not published; the relay will retry them",
                        metadata: ["saga.id": "\(message.command.sagaID)", "error": "\(StoreErrors.describe(error))"])
                }
            }
        }
        return published
    }
}
