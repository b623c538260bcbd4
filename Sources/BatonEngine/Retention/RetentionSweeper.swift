import BatonCore
import BatonStore
import Foundation
import Logging
import ServiceLifecycle

/// Removes finished sagas older than their ``RetentionPolicy`` keeps them (archiving them first
/// when an archive is configured), and the inbox and published outbox rows older than
/// ``RetentionPolicy/messageAge``.
///
/// It works in batches of ``RetentionPolicy/batchSize`` sagas, one transaction each, and after
/// each batch rests three times as long as the batch took: a backlog of millions drains at a
/// quarter of one connection's time, and the hot path keeps the rest. Replicas may all run it:
/// each batch skips rows another holds.
public struct RetentionSweeper: Service {
    let store: SagaStore
    let policy: RetentionPolicy
    let metrics: EngineMetrics
    let logger: Logger
    let archive: SagaArchive?
    /// Rest after each batch, as a multiple of the time the batch took.
    public var restRatio = 3.0

    public init(store: SagaStore, policy: RetentionPolicy, metrics: EngineMetrics = EngineMetrics(), logger: Logger) {
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
        self.archive = policy.archive.map(SagaArchive.init(directory:))
    }

    public func run() async throws {
        logger.info(
            "retention on",
            metadata: [
                "retention": "\(policy)", "retention.archive": "\(policy.archive?.path ?? "none")",
                "retention.messages": "\(policy.messageAge.map(\.description) ?? "kept")",
            ])
        await cancelWhenGracefulShutdown {
            var backoff = Backoff()
            backoff.maximum = .seconds(60)
            while !Task.isCancelled {
                do {
                    try await sweep()
                    backoff.reset()
                    try? await Task.sleep(for: policy.interval)
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("retention sweep failed; backing off", metadata: ["error": "\(StoreErrors.describe(error))"])
                    try? await Task.sleep(for: backoff.next())
                }
            }
        }
    }

    /// One sweep: every rule until it finds nothing more to remove, then the message records.
    /// - Returns: How many sagas it removed.
    @discardableResult
    public func sweep(now: Date = .now) async throws -> Int {
        var total = 0
        for (scope, cutoff) in policy.rules(now: now) {
            while !Task.isCancelled {
                let clock = ContinuousClock()
                let started = clock.now
                let removed = try await store.removeFinishedSagas(
                    finishedBefore: cutoff, scope: scope, limit: policy.batchSize,
                    archive: archive.map { archive in { batch in try archive.append(batch) } })
                let count = removed.values.reduce(0, +)
                for (workflow, sagas) in removed { metrics.sagasRemoved(workflow: workflow, count: sagas, archived: archive != nil) }
                total += count
                guard count == policy.batchSize else { break }
                try await Task.sleep(for: (clock.now - started) * restRatio)
            }
        }
        if let age = policy.messageAge {
            let cutoff = RetentionPolicy.cutoff(now, age)
            for table in [RetentionTable.inbox, .outbox] {
                while !Task.isCancelled {
                    let clock = ContinuousClock()
                    let started = clock.now
                    let limit = policy.batchSize * 4
                    let removed =
                        switch table {
                        case .inbox: try await store.pruneInbox(receivedBefore: cutoff, limit: limit)
                        case .outbox: try await store.pruneOutbox(publishedBefore: cutoff, limit: limit)
                        }
                    metrics.messageRecordsRemoved(table, count: removed)
                    guard removed == limit else { break }
                    try await Task.sleep(for: (clock.now - started) * restRatio)
                }
            }
        }
        return total
    }
}

/// The message records retention prunes by age.
enum RetentionTable: String {
    case inbox, outbox
}
