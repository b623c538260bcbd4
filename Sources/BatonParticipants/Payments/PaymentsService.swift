import BatonCore
import BatonTransport
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The Payments service as a process's parts: its HTTP API, and the sender that publishes each
/// payment's decision to the saga step waiting on it. (Its worker is a ``BatonWorker/Worker`` with
/// ``Payments/handlers``.)
public struct PaymentsService: Service {
    public let payments: Payments
    public let host: String
    public let port: Int
    /// Run it in the same service group, before this service.
    public let nats: NATSClient
    let logger: Logger

    public init(payments: Payments, host: String, port: Int, nats: NATSClient, logger: Logger) {
        self.payments = payments
        self.host = host
        self.port = port
        self.nats = nats
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

    /// Until cancelled: publishes decided answers when a decision is made, and every second (an
    /// answer whose publication failed, or one decided by another process, is sent then).
    func sendDecisions(woken decided: Doorbell) async throws {
        var jetStream: JetStream?
        while !Task.isCancelled {
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
