import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle

/// Publishes committed commands from the outbox to JetStream and marks them published.
///
/// Alone, it is woken by `NOTIFY` when a transaction queues commands. Beside a
/// ``CommandDispatcher`` (as in `baton serve`), it sweeps up only what the dispatcher missed: rows
/// older than ``grace``, found by its safety poll. Either way it sleeps between batches, never
/// busy-polls. While NATS is down it backs off and loses nothing: unpublished rows stay
/// in the outbox. Any number of replicas may run it: rows are claimed with `SKIP LOCKED`.
public struct OutboxRelay: Service {
    let store: SagaStore
    let jetStreams: JetStreamSource
    let logger: Logger
    let metrics: EngineMetrics
    public var batchSize = 64
    /// The longest sleep without a wake-up (a safety net for a lost notification).
    public var idlePoll: Duration = .seconds(5)
    /// Claim only rows queued at least this long ago: set when a ``CommandDispatcher`` publishes
    /// new rows, so that the two do not race for them. `nil` claims any row.
    public var grace: Duration?
    /// The grace (and safety poll) of a relay beside a ``CommandDispatcher``: long enough that the
    /// dispatcher has published and marked a row before the relay looks at it, short enough that a
    /// command the dispatcher missed still goes out within seconds.
    public static let sweepGrace: Duration = .seconds(2)

    /// - Parameter jetStreams: Where each batch gets its JetStream context (the process's
    ///   ``NATSClient``).
    public init(store: SagaStore, jetStreams: JetStreamSource, metrics: EngineMetrics = EngineMetrics(), logger: Logger) {
        self.store = store
        self.jetStreams = jetStreams
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        let doorbell = Doorbell()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                // A sweeping relay needs no wake-ups: nothing announces rows to it.
                if grace == nil {
                    group.addTask {
                        await listenForWakeups(store, logger: logger) { wakeup in
                            if wakeup == nil || wakeup == .outbox { doorbell.ring() }
                        }
                    }
                }
                var backoff = Backoff()
                while !Task.isCancelled {
                    do {
                        let (claimed, failed) = try await relayBatch()
                        if failed == 0 {
                            backoff.reset()
                            if claimed == batchSize { continue }
                            await doorbell.wait(atMost: idlePoll)
                        } else {
                            try? await Task.sleep(for: backoff.next())
                        }
                    } catch {
                        if Task.isCancelled { break }
                        logger.warning("outbox relay failed; backing off", metadata: ["error": "\(StoreErrors.describe(error))"])
                        try? await Task.sleep(for: backoff.next())
                    }
                }
                group.cancelAll()
            }
        }
    }

    /// Publishes one batch. - Returns: rows claimed, and how many of them failed to publish.
    func relayBatch() async throws -> (claimed: Int, failed: Int) {
        var failures = 0
        // Asked before claiming: while the client connects, nothing is held.
        let jetStream = try await jetStreams.jetStream()
        let now = Date.now
        let cutoff = grace.map { now.addingTimeInterval(-($0 / .seconds(1))) }
        let claimed = try await store.relayOutbox(limit: batchSize, now: now, queuedBefore: cutoff) { batch in
            var published: [Int64] = []
            var failed: [Int64: String] = [:]
            let started = Date.now
            let results = await jetStream.publish(batch: batch.map(\.command.outgoing))
            for (message, result) in zip(batch, results) {
                switch result {
                case .success:
                    published.append(message.id)
                    metrics.commandPublished(createdAt: message.createdAt)
                    EngineTracing.published(message.command, since: started, failure: nil)
                case .failure(let error):
                    EngineTracing.published(message.command, since: started, failure: error)
                    failed[message.id] = String(describing: error)
                }
            }
            if let (id, reason) = failed.first {
                logger.warning(
                    "commands not published", metadata: ["outbox.id": "\(id)", "failed": "\(failed.count)", "error": "\(reason)"])
            }
            failures = failed.count
            return OutboxPublishResult(published: published, failed: failed)
        }
        return (claimed, failures)
    }
}
