/// A JetStream stream, as Baton configures it.
public struct StreamConfiguration: Sendable, Hashable {
    public enum Retention: Sendable, Hashable {
        /// Messages are kept until limits (age, count, size) remove them.
        case limits
        /// A message is removed once a consumer acknowledges it; each subject has at most one consumer.
        case workQueue
    }

    public var name: String
    public var description: String
    public var subjects: [String]
    public var retention: Retention
    /// How long the stream remembers `Nats-Msg-Id`s to drop a second publish of the same message.
    public var duplicateWindow: Duration
    /// Messages older than this are removed (`nil`: never by age).
    public var maxAge: Duration?
    public var replicas: Int

    public init(
        name: String,
        description: String,
        subjects: [String],
        retention: Retention,
        duplicateWindow: Duration,
        maxAge: Duration? = nil,
        replicas: Int = 1
    ) {
        self.name = name
        self.description = description
        self.subjects = subjects
        self.retention = retention
        self.duplicateWindow = duplicateWindow
        self.maxAge = maxAge
        self.replicas = replicas
    }
}

/// A durable pull consumer on a stream.
public struct ConsumerConfiguration: Sendable, Hashable {
    /// The durable name: every process that pulls with it shares one cursor and splits the messages.
    public var durable: String
    public var filterSubject: String?
    /// How long the server waits for an ack (or `in_progress`) before redelivering.
    public var ackWait: Duration
    /// Deliveries before the server gives up on a message (-1: never).
    public var maxDeliver: Int
    /// Messages delivered and not yet acknowledged, at most, over all processes.
    public var maxAckPending: Int

    public init(
        durable: String,
        filterSubject: String? = nil,
        ackWait: Duration = .seconds(30),
        maxDeliver: Int = -1,
        maxAckPending: Int = 1000
    ) {
        self.durable = durable
        self.filterSubject = filterSubject
        self.ackWait = ackWait
        self.maxDeliver = maxDeliver
        self.maxAckPending = maxAckPending
    }
}
