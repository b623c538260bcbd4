import CNATS
import Foundation

/// A connection to NATS through libnats.
///
/// libnats reconnects by itself after a network failure (with the backoff in ``Options``) and
/// buffers publishes meanwhile; ``state`` tells readiness checks where it stands.
public final class NATSConnection: @unchecked Sendable {
    // @unchecked Sendable: libnats documents `natsConnection` as safe to use from any thread; the
    // handle never changes after init and is destroyed once, in deinit, when no one can use it.
    let handle: OpaquePointer
    private let reconnectPolicy: UnsafeMutablePointer<ReconnectPolicy>

    /// How to reach and stay connected to NATS.
    public struct Options: Sendable {
        /// Server URLs (`nats://host:port`); libnats tries them in turn.
        public var urls: [String]
        /// Shown in the server's monitoring (`connz`).
        public var name: String
        public var user: String?
        public var password: String?
        public var token: String?
        /// Require TLS; with `caFile`, trust that CA instead of the system's.
        public var tls: Bool
        public var caFile: String?
        /// Reconnect delays grow from `reconnectInitialWait`, doubling up to `reconnectMaxWait`, with
        /// up to 25% jitter so that many clients do not return at once. -1 attempts: forever.
        public var reconnectInitialWait: Duration
        public var reconnectMaxWait: Duration
        public var maxReconnectAttempts: Int
        /// Send every publish at once instead of buffering: lower latency for request/reply traffic.
        public var sendAsap: Bool
        public var connectTimeout: Duration
        /// When no server answers at first, return a connection that keeps trying in the
        /// background (its ``NATSConnection/state`` says when it is up) instead of failing.
        public var retryOnFailedConnect: Bool
        /// The prefix of this connection's reply inboxes (JetStream API answers, fetched messages,
        /// publish acks). With a prefix of its own, a NATS user can be allowed to subscribe to its
        /// own inboxes only (`_INBOX_ledger.>`), not to everyone's (`_INBOX.>`).
        public var inboxPrefix: String?
        /// A NATS credentials file (a user JWT and its NKey seed), for servers run with accounts.
        public var credentialsFile: String?

        public init(
            urls: [String],
            name: String,
            user: String? = nil,
            password: String? = nil,
            token: String? = nil,
            tls: Bool = false,
            caFile: String? = nil,
            reconnectInitialWait: Duration = .milliseconds(100),
            reconnectMaxWait: Duration = .seconds(5),
            maxReconnectAttempts: Int = -1,
            sendAsap: Bool = true,
            connectTimeout: Duration = .seconds(5),
            retryOnFailedConnect: Bool = false
        ) {
            self.urls = urls
            self.name = name
            self.user = user
            self.password = password
            self.token = token
            self.tls = tls
            self.caFile = caFile
            self.reconnectInitialWait = reconnectInitialWait
            self.reconnectMaxWait = reconnectMaxWait
            self.maxReconnectAttempts = maxReconnectAttempts
            self.sendAsap = sendAsap
            self.connectTimeout = connectTimeout
            self.retryOnFailedConnect = retryOnFailedConnect
            self.inboxPrefix = nil
            self.credentialsFile = nil
        }

        /// Options from a comma-separated URL list (`BATON_NATS_URL`). Credentials in a URL
        /// (`nats://user:pass@host`) are passed through to libnats as they are.
        public init(urlList: String, name: String) {
            self.init(urls: urlList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, name: name)
        }
    }

    /// Where the connection stands.
    public enum State: String, Sendable {
        case connecting, connected, reconnecting, disconnected, draining, closed
    }

    struct ReconnectPolicy {
        var initialMilliseconds: Int64
        var maxMilliseconds: Int64
    }

    private init(handle: OpaquePointer, reconnectPolicy: UnsafeMutablePointer<ReconnectPolicy>) {
        self.handle = handle
        self.reconnectPolicy = reconnectPolicy
    }

    /// Connects (off the cooperative pool: libnats connects synchronously).
    public static func connect(_ options: Options) async throws -> NATSConnection {
        let policy = UnsafeMutablePointer<ReconnectPolicy>.allocate(capacity: 1)
        policy.initialize(
            to: ReconnectPolicy(
                initialMilliseconds: max(1, options.reconnectInitialWait.milliseconds),
                maxMilliseconds: max(1, options.reconnectMaxWait.milliseconds)))
        let address = UInt(bitPattern: policy)
        do {
            let handle = try await BlockingCalls.run { try makeConnection(options, policy: address) }
            return NATSConnection(handle: OpaquePointer(bitPattern: handle)!, reconnectPolicy: policy)
        } catch {
            policy.deallocate()
            throw error
        }
    }

    /// Runs on a blocking thread; returns the handle as an address (a raw pointer is not Sendable).
    private static func makeConnection(_ options: Options, policy: UInt) throws -> UInt {
        var natsOptions: OpaquePointer?
        try NATSError.check(natsOptions_Create(&natsOptions), "creating connection options")
        defer { natsOptions_Destroy(natsOptions) }
        let strings = CStringArena()
        try NATSError.check(
            natsOptions_SetServers(natsOptions, strings.array(options.urls), Int32(options.urls.count)),
            "setting server URLs \(options.urls)")
        try NATSError.check(natsOptions_SetName(natsOptions, options.name), "setting the connection name")
        if let user = options.user {
            try NATSError.check(natsOptions_SetUserInfo(natsOptions, user, options.password), "setting user credentials")
        }
        if let token = options.token { try NATSError.check(natsOptions_SetToken(natsOptions, token), "setting the token") }
        if let file = options.credentialsFile {
            try NATSError.check(natsOptions_SetUserCredentialsFromFiles(natsOptions, file, nil), "loading credentials from \(file)")
        }
        if let prefix = options.inboxPrefix {
            try NATSError.check(natsOptions_SetCustomInboxPrefix(natsOptions, prefix), "setting the inbox prefix \(prefix)")
        }
        if options.tls {
            try NATSError.check(natsOptions_SetSecure(natsOptions, true), "requiring TLS")
            if let caFile = options.caFile {
                try NATSError.check(natsOptions_LoadCATrustedCertificates(natsOptions, caFile), "loading CA file \(caFile)")
            }
        }
        try NATSError.check(natsOptions_SetTimeout(natsOptions, options.connectTimeout.milliseconds), "setting the timeout")
        try NATSError.check(natsOptions_SetMaxReconnect(natsOptions, Int32(options.maxReconnectAttempts)), "setting reconnects")
        try NATSError.check(
            natsOptions_SetCustomReconnectDelay(natsOptions, reconnectDelay, UnsafeMutableRawPointer(bitPattern: policy)),
            "setting the reconnect backoff")
        try NATSError.check(natsOptions_SetSendAsap(natsOptions, options.sendAsap), "setting SendAsap")
        if options.retryOnFailedConnect {
            // A callback makes the first connect asynchronous: libnats returns at once and keeps
            // trying with the reconnect policy. The callback itself has nothing to do.
            try NATSError.check(
                natsOptions_SetRetryOnFailedConnect(natsOptions, true, { _, _ in }, nil), "setting retry on failed connect")
        }
        var connection: OpaquePointer?
        let status = natsConnection_Connect(&connection, natsOptions)
        if status != NATS_NOT_YET_CONNECTED {
            try NATSError.check(status, "connecting to \(options.urls.joined(separator: ","))")
        }
        return UInt(bitPattern: connection)
    }

    public var state: State {
        switch natsConnection_Status(handle) {
        case NATS_CONN_STATUS_CONNECTED: .connected
        case NATS_CONN_STATUS_CONNECTING: .connecting
        case NATS_CONN_STATUS_RECONNECTING: .reconnecting
        case NATS_CONN_STATUS_CLOSED: .closed
        case NATS_CONN_STATUS_DRAINING_SUBS, NATS_CONN_STATUS_DRAINING_PUBS: .draining
        default: .disconnected
        }
    }

    /// Closes the connection; later calls fail with a "connection closed" error.
    public func close() {
        natsConnection_Close(handle)
    }

    /// Publishes a core NATS message (no JetStream ack). libnats buffers it; with `sendAsap` it is
    /// written at once. Used for acknowledgements.
    func publish(subject: String, payload: String) throws {
        try NATSError.check(
            natsConnection_PublishString(handle, subject, payload), "publishing to \(subject)")
    }

    /// Waits until the server has processed everything published so far.
    public func flush(timeout: Duration = .seconds(5)) async throws {
        let address = UInt(bitPattern: handle)
        try await BlockingCalls.run {
            try NATSError.check(
                natsConnection_FlushTimeout(OpaquePointer(bitPattern: address), timeout.milliseconds), "flushing the connection")
        }
    }

    deinit {
        natsConnection_Destroy(handle)
        reconnectPolicy.deallocate()
    }
}

/// libnats asks for each reconnect delay: double from the initial wait up to the maximum, minus up
/// to 25% jitter. A plain C function: it reads the policy through `closure`.
private func reconnectDelay(_ connection: OpaquePointer?, _ attempts: Int32, _ closure: UnsafeMutableRawPointer?) -> Int64 {
    guard let policy = closure?.assumingMemoryBound(to: NATSConnection.ReconnectPolicy.self).pointee else { return 1000 }
    let exponent = min(Int64(max(attempts - 1, 0)), 20)
    let delay = min(policy.maxMilliseconds, policy.initialMilliseconds << exponent)
    return delay - Int64.random(in: 0...(delay / 4))
}
