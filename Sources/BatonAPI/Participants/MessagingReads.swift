import BatonTransport
import Foundation
import Synchronization

/// What the API and the console read from NATS: the dead letters, and each participant's consumer. Every read
/// is bounded in time, so that a page renders (saying what it could not read) while NATS is away.
public struct MessagingReads: Sendable {
    /// How many dead letters the stream holds, and the newest of them.
    public var deadLetters: @Sendable (_ newest: Int) async throws -> (count: UInt64, messages: [StoredStreamMessage])
    /// Each participant's consumer (a participant with none is left out).
    public var consumers: @Sendable (_ participants: [String]) async throws -> [String: ConsumerState]

    public init(
        deadLetters: @escaping @Sendable (_ newest: Int) async throws -> (count: UInt64, messages: [StoredStreamMessage]),
        consumers: @escaping @Sendable (_ participants: [String]) async throws -> [String: ConsumerState]
    ) {
        self.deadLetters = deadLetters
        self.consumers = consumers
    }

    /// No NATS: pages say so where they would show its figures.
    public static let unavailable = MessagingReads(
        deadLetters: { _ in throw MessagingUnavailable(reason: "no NATS connection is configured") },
        consumers: { _ in throw MessagingUnavailable(reason: "no NATS connection is configured") })

    /// Reads over the server's NATS connection, each read given up after `limit`.
    public static func jetStream(_ nats: NATSClient, limit: Duration = .seconds(3)) -> MessagingReads {
        MessagingReads(
            deadLetters: { newest in
                try await bounded(limit) {
                    let jetStream = try await nats.jetStream()
                    let stream = BatonStreams.deadLetters.name
                    let count = try await jetStream.streamCounts(stream)?.messages ?? 0
                    return (count, try await jetStream.newestMessages(stream: stream, limit: newest))
                }
            },
            consumers: { participants in
                try await bounded(limit) {
                    let jetStream = try await nats.jetStream()
                    var states: [String: ConsumerState] = [:]
                    for participant in participants {
                        states[participant] = try await jetStream.consumerState(stream: BatonStreams.commands.name, durable: participant)
                    }
                    return states
                }
            })
    }

    /// The work's result, or an error once `limit` has passed. The work is left to finish on its
    /// own: libnats' blocking calls cannot be cancelled, and each has its own timeout.
    static func bounded<Value: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let answered = Mutex(false)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            let once: @Sendable (Result<Value, any Error>) -> Void = { result in
                let first = answered.withLock { answered in
                    defer { answered = true }
                    return !answered
                }
                if first { continuation.resume(with: result) }
            }
            let running = Task {
                do { once(.success(try await work())) } catch { once(.failure(error)) }
            }
            Task {
                try? await Task.sleep(for: limit)
                once(.failure(MessagingUnavailable(reason: "NATS did not answer within \(limit)")))
                running.cancel()
            }
        }
    }
}

/// Why the console could not read from NATS.
public struct MessagingUnavailable: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
