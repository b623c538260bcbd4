import BatonCore
import BatonStore
import CoreMetrics
import Foundation

/// What the engine counts and times, through swift-metrics: `baton serve` backs it with a
/// Prometheus registry and serves it at `/metrics` (`docs/operations.md` lists every metric).
///
/// Every figure is recorded after its transaction commits, from the transition the state machine
/// returned, so a rolled-back transition counts nothing.
public struct EngineMetrics: Sendable {
    let factory: any MetricsFactory

    /// Metrics made by `factory` (by default, the process's bootstrapped `MetricsSystem`).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    /// The label of the histogram of events applied per transaction, and its buckets.
    public static let batchSizeLabel = "baton_batch_size"
    public static let batchSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64]

    /// What one transaction applied at once.
    public enum BatchSource: String, Sendable {
        case replies, timers
    }

    /// A transaction that applied `size` events together (``batchSizeLabel``): how well batching
    /// works under the load at hand (one at a time when idle, more as load grows).
    func batchApplied(_ source: BatchSource, size: Int) {
        Recorder(label: Self.batchSizeLabel, dimensions: [("source", source.rawValue)], factory: factory).record(size)
    }

    /// A committed transition of `saga`.
    func record(_ transition: SagaTransition, of saga: SagaInstance, now: Date = .now) {
        let workflow = [("workflow", saga.workflow)]
        if case .ignored(let reason, _) = transition.outcome {
            Counter(label: "baton_replies_ignored_total", dimensions: [("reason", reason.rawValue)], factory: factory).increment()
        }
        for case .recordHistory(let entry) in transition.effects {
            switch entry.kind {
            case .sagaStarted:
                Counter(label: "baton_sagas_started_total", dimensions: workflow, factory: factory).increment()
            case .sagaCompleted:
                Counter(label: "baton_sagas_completed_total", dimensions: workflow, factory: factory).increment()
                timeSaga(saga, now: now)
            case .sagaFailed:
                Counter(label: "baton_sagas_failed_total", dimensions: workflow, factory: factory).increment()
                timeSaga(saga, now: now)
            case .sagaCancelled:
                Counter(label: "baton_sagas_cancelled_total", dimensions: workflow, factory: factory).increment()
                timeSaga(saga, now: now)
            case .sagaSuspended:
                Counter(label: "baton_sagas_suspended_total", dimensions: workflow, factory: factory).increment()
            case .stepCompensated:
                Counter(label: "baton_compensations_total", dimensions: workflow, factory: factory).increment()
            case .stepTimedOut:
                Counter(label: "baton_step_timeouts_total", dimensions: workflow, factory: factory).increment()
            case .stepSucceeded:
                // From the attempt's command to its reply: the participant's time plus transport.
                if let step = saga.steps.first(where: { $0.name == entry.step }), let sent = step.commandSentAt {
                    Timer(label: "baton_step_duration_seconds", dimensions: workflow + [("step", step.name)], factory: factory)
                        .recordInterval(since: sent, now: now)
                }
            default:
                break
            }
        }
    }

    private func timeSaga(_ saga: SagaInstance, now: Date) {
        Timer(label: "baton_saga_duration_seconds", dimensions: [("workflow", saga.workflow)], factory: factory)
            .recordInterval(since: saga.createdAt, now: now)
    }

    /// A reply applied: from its publication (JetStream's timestamp) to the commit.
    func replyApplied(publishedAt: Date?, now: Date = .now) {
        guard let publishedAt else { return }
        Timer(label: "baton_reply_apply_seconds", dimensions: [], factory: factory).recordInterval(since: publishedAt, now: now)
    }

    /// A command published: from the commit that wrote it to the outbox to JetStream's ack.
    func commandPublished(createdAt: Date, now: Date = .now) {
        Timer(label: "baton_command_publish_seconds", dimensions: [], factory: factory).recordInterval(since: createdAt, now: now)
    }

    /// A timer fired: how long after it was due.
    func timerFired(due: Date, now: Date = .now) {
        Timer(label: "baton_timer_lag_seconds", dimensions: [], factory: factory).recordInterval(since: due, now: now)
    }

    /// A saga parked SUSPENDED because an event cannot be applied to it.
    func sagaParked(workflow: String) {
        Counter(label: "baton_sagas_parked_total", dimensions: [("workflow", workflow)], factory: factory).increment()
    }

    /// A message sent to the dead letters by the orchestrator.
    func deadLettered() {
        Counter(label: "baton_dead_letters_total", dimensions: [("source", "orchestrator")], factory: factory).increment()
    }

    /// Finished sagas retention removed (`baton_retention_sagas_removed_total`), and how many of
    /// them it archived first (`baton_retention_sagas_archived_total`).
    func sagasRemoved(workflow: String, count: Int, archived: Bool) {
        Counter(label: "baton_retention_sagas_removed_total", dimensions: [("workflow", workflow)], factory: factory).increment(by: count)
        if archived {
            Counter(label: "baton_retention_sagas_archived_total", dimensions: [("workflow", workflow)], factory: factory)
                .increment(by: count)
        }
    }

    /// Inbox or published outbox rows retention removed (`baton_retention_records_removed_total`).
    func messageRecordsRemoved(_ table: RetentionTable, count: Int) {
        guard count > 0 else { return }
        Counter(label: "baton_retention_records_removed_total", dimensions: [("table", table.rawValue)], factory: factory)
            .increment(by: count)
    }

    /// A participant's figures, as the API's participant monitor saw them at a scrape:
    /// `baton_participant_workers` (1 while a worker is seen, 0 when none is; not set while it
    /// cannot tell) and `baton_participant_commands_pending`.
    public func participant(_ name: String, working: Bool?, pending: UInt64) {
        if let working {
            Gauge(label: "baton_participant_workers", dimensions: [("participant", name)], factory: factory).record(working ? 1 : 0)
        }
        Gauge(label: "baton_participant_commands_pending", dimensions: [("participant", name)], factory: factory)
            .record(Int64(clamping: pending))
    }

    /// Sagas not yet finished, by status, and the outbox's oldest unpublished command: read from
    /// the store when scraped.
    public func sample(_ store: SagaStore, now: Date = .now) async throws {
        let counts = try await store.activeSagaCounts()
        for status in [SagaStatus.pending, .processing, .compensating, .suspended] {
            Gauge(label: "baton_sagas_in_flight", dimensions: [("status", status.rawValue)], factory: factory)
                .record(counts[status] ?? 0)
        }
        let backlog = try await store.outboxBacklog()
        Gauge(label: "baton_outbox_unpublished", dimensions: [], factory: factory).record(backlog.count)
        Gauge(label: "baton_outbox_lag_seconds", dimensions: [], factory: factory)
            .record(backlog.oldest.map { max(0, now.timeIntervalSince($0)) } ?? 0)
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: Date, now: Date) {
        recordNanoseconds(Int64(max(0, now.timeIntervalSince(start)) * 1_000_000_000))
    }
}
