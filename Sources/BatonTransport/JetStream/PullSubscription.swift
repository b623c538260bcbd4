import CNATS
import Foundation

/// A subscription bound to a durable pull consumer. Messages come from ``messages(batch:maxWait:)``
/// as an `AsyncSequence`, fetched in batches when the previous batch is used up, so a slow handler
/// never has more than one batch delivered and unacknowledged.
public final class PullSubscription: @unchecked Sendable {
    // @unchecked Sendable: libnats documents subscriptions as safe to use from any thread; the handle
    // never changes after init and is destroyed once, in deinit. Fetches are issued one at a time
    // by the sequence's iterator.
    let handle: OpaquePointer
    /// The connection it receives on: once that is closed for good, bind again on a new one.
    public let connection: NATSConnection
    // Keeps the JetStream context (and so the connection) alive as long as the subscription.
    private let jetStream: JetStream

    init(handle: OpaquePointer, connection: NATSConnection, jetStream: JetStream) {
        self.handle = handle
        self.connection = connection
        self.jetStream = jetStream
    }

    deinit {
        // Destroy, not unsubscribe: unsubscribing could delete a consumer libnats had created, and
        // this one belongs to every process that binds to it.
        natsSubscription_Destroy(handle)
    }

    /// Fetches up to `batch` messages, waiting up to `maxWait` for the first.
    ///
    /// Returns as soon as there is one message. libnats's `natsSubscription_Fetch` holds a pull
    /// request open until the *whole* batch has arrived or the wait is over, so with a batch of 32
    /// and a trickle of messages each one waited up to `maxWait` (measured by `baton-bench`: most
    /// of a step's round trip). So: first take what the consumer has now, without waiting; only
    /// when it has nothing, wait for a single message.
    /// - Returns: The messages (empty when none came in time, or when the task is cancelled:
    ///   callers stop on cancellation themselves).
    public func fetch(batch: Int, maxWait: Duration) async throws -> [JetStreamMessage] {
        do {
            let ready = try await fetchOnce(batch: max(batch, 1), wait: nil)
            if !ready.isEmpty || Task.isCancelled { return ready }
            return try await fetchOnce(batch: 1, wait: maxWait)
        } catch is CancellationError {
            return []
        }
    }

    /// One pull request: with `wait`, for `batch` messages within it; without, for what is there now.
    private func fetchOnce(batch: Int, wait: Duration?) async throws -> [JetStreamMessage] {
        let address = UInt(bitPattern: handle)
        let connection = self.connection
        return try await BlockingCalls.run {
            var list = natsMsgList()
            var request = jsFetchRequest()
            jsFetchRequest_Init(&request)
            request.Batch = Int32(batch)
            // Without waiting, the server answers at once (the messages it has, then "no
            // messages"); the expiry only bounds how long the answer may take to arrive.
            request.NoWait = wait == nil
            request.Expires = (wait ?? .seconds(1)).nanoseconds
            let status = natsSubscription_FetchRequest(&list, OpaquePointer(bitPattern: address), &request)
            if status == NATS_TIMEOUT || status == NATS_NOT_FOUND { return [] }
            let code = jsErrCode(0)
            try NATSError.check(status, jetStreamCode: code, "fetching messages")
            defer { natsMsgList_Destroy(&list) }
            return (0..<Int(list.Count)).compactMap { index in
                list.Msgs[index].map { JetStreamMessage(copying: $0, connection: connection) }
            }
        }
    }

    /// The consumer's messages, for as long as the iterating task is not cancelled.
    /// - Parameters:
    ///   - batch: Messages fetched at once.
    ///   - maxWait: How long one fetch waits; also how soon cancellation is noticed.
    public func messages(batch: Int = 32, maxWait: Duration = .seconds(1)) -> Messages {
        Messages(subscription: self, batch: batch, maxWait: maxWait)
    }

    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = JetStreamMessage
        let subscription: PullSubscription
        let batch: Int
        let maxWait: Duration

        public func makeAsyncIterator() -> Iterator { Iterator(messages: self) }

        public struct Iterator: AsyncIteratorProtocol {
            let messages: Messages
            var buffer: [JetStreamMessage] = []

            public mutating func next() async throws -> JetStreamMessage? {
                while buffer.isEmpty {
                    if Task.isCancelled { return nil }
                    buffer = try await messages.subscription.fetch(batch: messages.batch, maxWait: messages.maxWait).reversed()
                }
                return buffer.popLast()
            }
        }
    }
}

extension JetStreamMessage {
    /// Copies a libnats message (on the thread that fetched it); the caller destroys the original.
    init(copying message: OpaquePointer, connection: NATSConnection) {
        let content = Self.copyContent(message)
        subject = content.subject
        replySubject = natsMsg_GetReply(message).map { String(cString: $0) }
        payload = content.payload
        headers = content.headers

        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        if natsMsg_GetMetaData(&meta, message) == NATS_OK, let meta {
            metadata = DeliveryMetadata(
                stream: String(cString: meta.pointee.Stream),
                consumer: String(cString: meta.pointee.Consumer),
                streamSequence: meta.pointee.Sequence.Stream,
                consumerSequence: meta.pointee.Sequence.Consumer,
                deliveryCount: Int(meta.pointee.NumDelivered),
                pending: meta.pointee.NumPending,
                timestamp: Date(timeIntervalSince1970: Double(meta.pointee.Timestamp) / 1_000_000_000)
            )
            jsMsgMetaData_Destroy(meta)
        } else {
            metadata = nil
        }
        self.connection = connection
    }
}

extension JetStreamMessage {
    /// A libnats message's subject, headers and payload, copied out.
    static func copyContent(_ message: OpaquePointer) -> (subject: String, headers: [String: [String]], payload: Data) {
        let subject = String(cString: natsMsg_GetSubject(message))
        let length = Int(natsMsg_GetDataLength(message))
        let payload = natsMsg_GetData(message).map { Data(bytes: $0, count: length) } ?? Data()
        var headers: [String: [String]] = [:]
        var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        var keyCount: Int32 = 0
        if natsMsgHeader_Keys(message, &keys, &keyCount) == NATS_OK, let keys {
            for index in 0..<Int(keyCount) {
                guard let key = keys[index] else { continue }
                var values: UnsafeMutablePointer<UnsafePointer<CChar>?>?
                var valueCount: Int32 = 0
                if natsMsgHeader_Values(message, key, &values, &valueCount) == NATS_OK, let values {
                    headers[String(cString: key)] = (0..<Int(valueCount)).compactMap { values[$0].map { String(cString: $0) } }
                    free(values)
                }
            }
            free(keys)
        }
        return (subject, headers, payload)
    }
}
