import BatonCore
import BatonTransport
import BatonWorker
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The Payments service as a process's parts: its HTTP API, and the senders that take each
/// payment's decision to its saga: as the signal `payment-result` through Baton's API, and (for
/// checkout v1 sagas) as the deferred reply of the step waiting on it. (Its worker is a
/// ``BatonWorker/Worker`` with ``Payments/handlers``.)
public struct PaymentsService: Service {
    public let payments: Payments
    public let host: String
    public let port: Int
    /// Run it in the same service group, before this service.
    public let nats: NATSClient
    /// Baton's API, for the signals (a credential with `sagas:signal`).
    public let signals: SagaSignals
    let logger: Logger

    public init(payments: Payments, host: String, port: Int, nats: NATSClient, signals: SagaSignals, logger: Logger) {
        self.payments = payments
        self.host = host
        self.port = port
        self.nats = nats
        self.signals = signals
        self.logger = logger
    }

    public func run() async throws {
        let decided = Doorbell()
        let application = Application(
            router: payments.router(decided: { decided.ring() }),
            configuration: .init(address: .hostname(host, port: port), serverName: "payments"), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            group.addTask { try await cancelWhenGracefulShutdown { try await sendDecisions(woken: decided) } }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Until cancelled: sends decisions when one is made, and every second (one whose sending
    /// failed, or one decided by another process, is sent then).
    func sendDecisions(woken decided: Doorbell) async throws {
        var jetStream: JetStream?
        while !Task.isCancelled {
            do {
                _ = try await payments.sendDecisionSignals(via: signals)
            } catch {
                logger.warning("payment decisions not signalled yet; retrying", metadata: ["error": "\(error)"])
            }
            do {
                // Asked each time: the client replaces a connection closed for good.
                let connection = try await nats.connection()
                if jetStream?.connection !== connection { jetStream = try JetStream(connection) }
                guard let jetStream else { continue }
                _ = try await payments.sendDecidedReplies(on: jetStream)
            } catch {
                logger.warning("payment decisions not sent yet; retrying", metadata: ["error": "\(error)"])
            }
            await decided.wait(atMost: .seconds(1))
        }
    }
}
