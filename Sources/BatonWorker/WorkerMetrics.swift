import BatonTransport
import CoreMetrics
import Foundation

/// What a worker counts and times, through swift-metrics (`docs/operations.md` lists them).
/// `baton-participants run` backs it with a Prometheus registry and serves it at `/metrics`.
public struct WorkerMetrics: Sendable {
    let factory: any MetricsFactory

    /// Metrics made by `factory` (by default, the process's bootstrapped `MetricsSystem`).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    /// A command handled to its reply: `outcome` is the reply's wire status (`succeeded`,
    /// `failed`, `retry`, or `in_progress` for a deferred answer).
    func handled(_ command: CommandMessage, participant: String, outcome: String, since start: ContinuousClock.Instant) {
        let dimensions = [("participant", participant), ("action", command.action), ("direction", command.direction.rawValue)]
        Counter(label: "baton_worker_commands_total", dimensions: dimensions + [("outcome", outcome)], factory: factory).increment()
        let elapsed = ContinuousClock.now - start
        Timer(label: "baton_worker_handler_seconds", dimensions: dimensions, factory: factory)
            .recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A command JetStream delivered more than once (its first delivery was not acknowledged).
    func redelivered(participant: String) {
        Counter(label: "baton_worker_redeliveries_total", dimensions: [("participant", participant)], factory: factory).increment()
    }

    /// Commands being handled now by this process.
    func inFlight(participant: String) -> Meter {
        Meter(label: "baton_worker_in_flight", dimensions: [("participant", participant)], factory: factory)
    }

    /// A command sent to the dead letters.
    func deadLettered(participant: String) {
        Counter(label: "baton_worker_dead_letters_total", dimensions: [("participant", participant)], factory: factory).increment()
    }

    /// A reply that could not be published (the command is redelivered).
    func replyFailed(participant: String) {
        Counter(label: "baton_worker_reply_failures_total", dimensions: [("participant", participant)], factory: factory).increment()
    }
}
