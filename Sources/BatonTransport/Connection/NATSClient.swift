import Logging
import ServiceLifecycle
import Synchronization

/// A process's connection to NATS, run as a service the way `PostgresClient` is PostgreSQL's: it
/// owns connecting and reconnecting, and everything else in the process asks it for the
/// connection instead of connecting by itself.
///
/// - It connects at once and never gives up: while NATS is away, libnats keeps trying with the
///   backoff in ``NATSConnection/Options`` and buffers publishes (``connection()`` returns as soon
///   as the connection exists, connected or not yet).
/// - libnats reconnects a dropped connection by itself. One it has closed for good (it happens when
///   the server goes away in the middle of the first handshake, or when the reconnect attempts run
///   out) is replaced: ``connection()`` then returns the new one, so a caller that finds its
///   connection closed asks again.
/// - Put it in the service group before the services that use it: a group shuts its services down
///   in reverse order, so it closes the connection only after they have drained (their last acks
///   and publishes still go out).
public final class NATSClient: Service, Sendable {
    public let options: NATSConnection.Options
    let logger: Logger
    /// How often the connection is looked at for a close for good.
    let supervisionInterval: Duration

    private enum Stage {
        case connecting(waiters: [Int: CheckedContinuation<NATSConnection, any Error>])
        case ready(NATSConnection)
        case stopped
    }

    private let stage = Mutex<Stage>(.connecting(waiters: [:]))
    /// The JetStream context on the current connection, made on first use: one per connection, so
    /// that every service shares its asynchronous-publish state (and libnats one context).
    private let context = Mutex<JetStream?>(nil)
    private let nextWaiter = Atomic<Int>(0)

    public init(options: NATSConnection.Options, logger: Logger, supervisionInterval: Duration = .milliseconds(500)) {
        self.options = options
        self.logger = logger
        self.supervisionInterval = supervisionInterval
    }

    /// The connection, once there is one; waits while the client connects.
    /// - Throws: `CancellationError` when the calling task is cancelled, ``NATSClientStopped`` once
    ///   the client has stopped.
    public func connection() async throws -> NATSConnection {
        let id = nextWaiter.wrappingAdd(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let answer: Result<NATSConnection, any Error>? = stage.withLock { stage in
                    switch stage {
                    case .ready(let connection): return .success(connection)
                    case .stopped: return .failure(NATSClientStopped())
                    case .connecting(var waiters):
                        guard !Task.isCancelled else { return .failure(CancellationError()) }
                        waiters[id] = continuation
                        stage = .connecting(waiters: waiters)
                        return nil
                    }
                }
                if let answer { continuation.resume(with: answer) }
            }
        } onCancel: {
            let waiter = stage.withLock { stage -> CheckedContinuation<NATSConnection, any Error>? in
                guard case .connecting(var waiters) = stage, let waiter = waiters.removeValue(forKey: id) else { return nil }
                stage = .connecting(waiters: waiters)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// The connection now, without waiting: `nil` while the client connects (or has stopped).
    public var currentConnection: NATSConnection? {
        stage.withLock { stage in
            if case .ready(let connection) = stage { return connection }
            return nil
        }
    }

    /// The JetStream context on the current connection (the same one until the connection is
    /// replaced).
    public func jetStream() async throws -> JetStream {
        let connection = try await connection()
        return try context.withLock { context in
            if let context, context.connection === connection { return context }
            let made = try JetStream(connection)
            context = made
            return made
        }
    }

    /// Connects, replaces a connection closed for good, and closes the connection on graceful
    /// shutdown or cancellation.
    public func run() async throws {
        var options = self.options
        // The first connect returns at once; libnats keeps trying in the background.
        options.retryOnFailedConnect = true
        let stopping = Mutex(false)
        await withGracefulShutdownHandler {
            while !stopping.withLock({ $0 }) && !Task.isCancelled {
                let connection: NATSConnection
                do {
                    connection = try await NATSConnection.connect(options)
                } catch {
                    // Only options libnats refuses fail here (a bad URL, a missing CA file): say so
                    // and try again, as a database client does, rather than end the process.
                    logger.error("cannot create a NATS connection; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                publish(connection)
                while connection.state != .closed && !stopping.withLock({ $0 }) && !Task.isCancelled {
                    try? await Task.sleep(for: supervisionInterval)
                }
                if stopping.withLock({ $0 }) || Task.isCancelled {
                    connection.close()
                    break
                }
                logger.warning("the NATS connection was closed for good; connecting again")
                stage.withLock { stage in
                    if case .ready = stage { stage = .connecting(waiters: [:]) }
                }
            }
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
        }
        let waiters = stage.withLock { stage -> [CheckedContinuation<NATSConnection, any Error>] in
            defer { stage = .stopped }
            if case .connecting(let waiters) = stage { return Array(waiters.values) }
            return []
        }
        for waiter in waiters { waiter.resume(throwing: NATSClientStopped()) }
    }

    /// Makes `connection` the current one and hands it to everyone waiting.
    private func publish(_ connection: NATSConnection) {
        let waiters = stage.withLock { stage -> [CheckedContinuation<NATSConnection, any Error>] in
            defer { stage = .ready(connection) }
            if case .connecting(let waiters) = stage { return Array(waiters.values) }
            return []
        }
        for waiter in waiters { waiter.resume(returning: connection) }
    }
}

/// The ``NATSClient`` has stopped (the process is shutting down): there is no connection to give.
public struct NATSClientStopped: Error, CustomStringConvertible {
    public var description: String { "the NATS client has stopped" }
}
