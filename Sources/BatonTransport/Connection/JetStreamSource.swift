/// Where a long-lived publisher or consumer gets its JetStream context, each time it needs one.
///
/// The engine's dispatcher, relay and reply consumer outlive any one connection: a connection
/// libnats closed for good is replaced by the ``NATSClient``, and a service that kept the context
/// it started with would publish into a closed connection for ever. So they ask the source before
/// each batch (and the reply consumer binds again when its connection is gone).
public struct JetStreamSource: Sendable {
    private let current: @Sendable () async throws -> JetStream

    private init(_ current: @escaping @Sendable () async throws -> JetStream) {
        self.current = current
    }

    /// The client's context on its current connection (``NATSClient/jetStream()``).
    public static func client(_ client: NATSClient) -> JetStreamSource {
        JetStreamSource { try await client.jetStream() }
    }

    /// Always the same context: for a tool or a test that owns its connection.
    public static func fixed(_ jetStream: JetStream) -> JetStreamSource {
        JetStreamSource { jetStream }
    }

    /// The context to use now.
    /// - Throws: What ``NATSClient/jetStream()`` throws: the client has stopped, or the caller was
    ///   cancelled while the client connects.
    public func jetStream() async throws -> JetStream { try await current() }
}
