import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging

/// Whether each participant has a worker: every 2 s it reads each participant's consumer on
/// `BATON_COMMANDS`, and counts a worker as seen when a pull is waiting at the server or a command
/// is delivered and not yet acknowledged (a worker is busy with it). A participant no worker has
/// been seen for in ``grace`` has none: its steps say so, and so does a metric an alert can use.
///
/// Each replica watches on its own (a few consumer reads every 2 s); its view needs ``grace`` after
/// start before it may say that nobody works.
actor ParticipantMonitor {
    struct Status: Sendable, Hashable {
        var name: String
        /// The actions the workflows send it (compensations included).
        var actions: [String]
        /// Its consumer, or `nil` when it has none.
        var consumer: ConsumerState?
        /// When a worker was last seen pulling or working.
        var lastWorkerSeen: Date?
    }

    /// What the last look found, and when.
    struct Snapshot: Sendable {
        var participants: [Status]
        var at: Date?
        /// Why NATS could not be read, when it could not.
        var problem: String?
        /// Whether the monitor has watched long enough to say that a participant has no worker.
        var settled: Bool
        var grace: Duration

        func hasWorker(_ status: Status, now: Date = .now) -> Bool? {
            guard problem == nil else { return nil }
            if let seen = status.lastWorkerSeen, now.timeIntervalSince(seen) <= grace.seconds { return true }
            return settled ? false : nil
        }

        func status(of participant: String) -> Status? { participants.first { $0.name == participant } }
    }

    let store: SagaStore
    let messaging: MessagingReads
    let interval: Duration
    let grace: Duration
    let logger: Logger
    private var statuses: [String: Status] = [:]
    private var at: Date?
    private var problem: String?
    private var startedAt: Date?

    init(store: SagaStore, messaging: MessagingReads, interval: Duration = .seconds(2), grace: Duration = .seconds(10), logger: Logger) {
        self.store = store
        self.messaging = messaging
        self.interval = interval
        self.grace = grace
        self.logger = logger
    }

    /// Looks every ``interval`` until cancelled.
    func run() async {
        while !Task.isCancelled {
            await look()
            try? await Task.sleep(for: interval)
        }
    }

    /// What the last look found; one is taken first when none is recent (a server whose monitor
    /// does not run, such as a test's router, still answers).
    func snapshot(now: Date = .now) async -> Snapshot {
        if at.map({ now.timeIntervalSince($0) > (interval * 3).seconds }) ?? true { await look(now: now) }
        let settled = startedAt.map { now.timeIntervalSince($0) >= grace.seconds } ?? false
        return Snapshot(
            participants: statuses.values.sorted { $0.name < $1.name }, at: at, problem: problem, settled: settled, grace: grace)
    }

    func look(now: Date = .now) async {
        if startedAt == nil { startedAt = now }
        do {
            let actions = try await store.participantActions()
            let consumers: [String: ConsumerState]
            do {
                consumers = try await messaging.consumers(actions.keys.sorted())
                problem = nil
            } catch {
                problem = "\(error)"
                consumers = [:]
            }
            var next: [String: Status] = [:]
            for (name, sent) in actions {
                let before = statuses[name]
                let consumer = consumers[name]
                var seen = before?.lastWorkerSeen
                if let consumer {
                    let pulled = consumer.lastDelivery != nil && consumer.lastDelivery != before?.consumer?.lastDelivery
                    if consumer.waitingPulls > 0 || consumer.unacknowledged > 0 || (pulled && before != nil) { seen = now }
                }
                next[name] = Status(name: name, actions: sent, consumer: consumer, lastWorkerSeen: seen)
            }
            statuses = next
            at = now
        } catch {
            logger.warning("cannot read the participants of the registered workflows", metadata: ["error": "\(error)"])
        }
    }
}

extension Duration {
    /// In seconds, as a `TimeInterval`.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
