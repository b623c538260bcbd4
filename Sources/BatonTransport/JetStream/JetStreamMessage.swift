import Foundation

/// A message to publish to JetStream.
public struct OutgoingMessage: Sendable, Hashable {
    public var subject: String
    /// Header names and their values, in order (a name may repeat).
    public var headers: [(name: String, value: String)]
    public var payload: Data
    /// Sent as `Nats-Msg-Id`: the stream drops a second message with the same id inside its
    /// duplicate window.
    public var messageID: String?

    public init(subject: String, headers: [(name: String, value: String)] = [], payload: Data, messageID: String? = nil) {
        self.subject = subject
        self.headers = headers
        self.payload = payload
        self.messageID = messageID
    }

    public static func == (lhs: OutgoingMessage, rhs: OutgoingMessage) -> Bool {
        lhs.subject == rhs.subject && lhs.payload == rhs.payload && lhs.messageID == rhs.messageID
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(subject)
        hasher.combine(payload)
        hasher.combine(messageID)
    }
}

/// The stream's answer to a publish.
public struct PublishAck: Sendable, Hashable {
    public var stream: String
    public var sequence: UInt64
    /// The stream already had a message with this `Nats-Msg-Id`: nothing was stored.
    public var duplicate: Bool
}

/// Where a delivered message sits in its stream and consumer.
public struct DeliveryMetadata: Sendable, Hashable {
    public var stream: String
    public var consumer: String
    public var streamSequence: UInt64
    public var consumerSequence: UInt64
    /// 1 on the first delivery, then one more for each redelivery.
    public var deliveryCount: Int
    /// Messages left for the consumer after this one.
    public var pending: UInt64
    /// When the stream stored the message.
    public var timestamp: Date
}

/// A message delivered by a pull consumer, copied out of libnats, with its acknowledgement calls.
///
/// Acknowledgements are core NATS publishes to the message's reply subject (the JetStream
/// protocol: `+ACK`, `-NAK`, `+WPI`, `+TERM`), so the value needs no C message to stay alive.
public struct JetStreamMessage: Sendable {
    public var subject: String
    /// Header values by name, in the order they came (a name may repeat).
    public var headers: [String: [String]]
    public var payload: Data
    public var replySubject: String?
    public var metadata: DeliveryMetadata?
    let connection: NATSConnection

    /// The first value of a header.
    public func header(_ name: String) -> String? { headers[name]?.first }

    /// Done: the stream will not deliver it again.
    public func ack() throws { try acknowledge("+ACK") }

    /// Not done: deliver it again, after `delay` when given (else at once).
    public func nak(delay: Duration? = nil) throws {
        if let delay { try acknowledge("-NAK {\"delay\": \(delay.nanoseconds)}") } else { try acknowledge("-NAK") }
    }

    /// Still working: restart the ack-wait timer.
    public func inProgress() throws { try acknowledge("+WPI") }

    /// Never deliver it again, without it having been processed (a poison message).
    public func term() throws { try acknowledge("+TERM") }

    private func acknowledge(_ body: String) throws {
        guard let replySubject else { return }
        try connection.publish(subject: replySubject, payload: body)
    }
}
