import CNATS
import Foundation

/// JetStream over one connection: streams, consumers, acknowledged publishes, pull subscriptions.
public final class JetStream: @unchecked Sendable {
    // @unchecked Sendable: libnats' `jsCtx` is safe to share between threads (its calls take the
    // connection's locks); the handle never changes after init and is destroyed once, in deinit.
    let handle: OpaquePointer
    public let connection: NATSConnection
    /// Asynchronous publishes waiting for their acknowledgement (``publish(batch:timeout:)``); the
    /// context's acknowledgement handler holds it as its closure until the context is destroyed.
    let pending: PendingAcknowledgements

    public init(_ connection: NATSConnection) throws {
        let pending = PendingAcknowledgements()
        let closure = Unmanaged.passRetained(pending).toOpaque()
        var options = jsOptions()
        var context: OpaquePointer?
        do {
            try NATSError.check(jsOptions_Init(&options), "initializing JetStream options")
            options.PublishAsync.AckHandler = acknowledgementReceived
            options.PublishAsync.AckHandlerClosure = closure
            // Enough for every command a dispatcher batch holds; more stall the publisher briefly.
            options.PublishAsync.MaxPending = 4096
            try NATSError.check(natsConnection_JetStream(&context, connection.handle, &options), "opening a JetStream context")
        } catch {
            Unmanaged<PendingAcknowledgements>.fromOpaque(closure).release()
            throw error
        }
        self.handle = context!
        self.connection = connection
        self.pending = pending
    }

    deinit {
        jsCtx_Destroy(handle)
        // With no publish waiting, no acknowledgement handler can run any more: its closure goes.
        // Otherwise it is left (a few bytes): a late acknowledgement may still reach it.
        if pending.isEmpty { Unmanaged.passUnretained(pending).release() }
    }

    var address: UInt { UInt(bitPattern: handle) }

    /// Creates the stream, or brings an existing one to this configuration.
    /// - Parameter updateExisting: When `false`, an existing stream is left as it is (the
    ///   orchestrator configures the streams; a worker only creates one that is missing, and must
    ///   not, say, take a replicated stream down to one replica).
    public func ensureStream(_ configuration: StreamConfiguration, updateExisting: Bool = true) async throws {
        let address = self.address
        try await BlockingCalls.run {
            let strings = CStringArena()
            var config = jsStreamConfig()
            try NATSError.check(jsStreamConfig_Init(&config), "initializing a stream configuration")
            config.Name = strings.make(configuration.name)
            config.Description = strings.make(configuration.description)
            config.Subjects = strings.array(configuration.subjects)
            config.SubjectsLen = Int32(configuration.subjects.count)
            config.Retention = configuration.retention == .workQueue ? js_WorkQueuePolicy : js_LimitsPolicy
            config.Storage = js_FileStorage
            config.Duplicates = configuration.duplicateWindow.nanoseconds
            config.MaxAge = configuration.maxAge?.nanoseconds ?? 0
            config.Replicas = Int64(configuration.replicas)
            let context = OpaquePointer(bitPattern: address)
            var code = jsErrCode(0)
            let added = js_AddStream(nil, context, &config, nil, &code)
            if added == NATS_OK { return }
            // Another process may have created the stream a moment ago. The server says so as
            // "name exists", or, when the two creations race, as "subjects overlap" (10065): either
            // way the stream is there, and updating it to this configuration is the answer. An
            // overlap with some other stream stays an error (the update finds no stream by our name).
            let addCode = code
            guard addCode == JSStreamNameExistErr || addCode == JSStreamSubjectOverlapErr else {
                throw NATSError(added, jetStreamCode: addCode, context: "creating stream \(configuration.name)")
            }
            guard updateExisting else {
                // "Name exists" means it is there; an overlap may be another stream's, so make sure.
                if addCode == JSStreamNameExistErr { return }
                var info: UnsafeMutablePointer<jsStreamInfo>?
                code = jsErrCode(0)
                let found = js_GetStreamInfo(&info, context, configuration.name, nil, &code)
                jsStreamInfo_Destroy(info)
                if found == NATS_OK { return }
                throw NATSError(added, jetStreamCode: addCode, context: "creating stream \(configuration.name)")
            }
            code = jsErrCode(0)
            let updated = js_UpdateStream(nil, context, &config, nil, &code)
            if updated == NATS_OK { return }
            if addCode == JSStreamSubjectOverlapErr && code == JSStreamNotFoundErr {
                throw NATSError(added, jetStreamCode: addCode, context: "creating stream \(configuration.name)")
            }
            throw NATSError(updated, jetStreamCode: code, context: "updating stream \(configuration.name)")
        }
    }

    /// Creates the durable consumer, or brings an existing one to this configuration.
    /// - Parameter updateExisting: When `false`, an existing consumer is left as it is (someone
    ///   else, its own participant, may have configured it).
    public func ensureConsumer(stream: String, _ configuration: ConsumerConfiguration, updateExisting: Bool = true) async throws {
        let address = self.address
        try await BlockingCalls.run {
            let strings = CStringArena()
            var config = jsConsumerConfig()
            try NATSError.check(jsConsumerConfig_Init(&config), "initializing a consumer configuration")
            config.Durable = strings.make(configuration.durable)
            config.FilterSubject = strings.make(configuration.filterSubject)
            config.AckPolicy = js_AckExplicit
            config.DeliverPolicy = js_DeliverAll
            config.AckWait = configuration.ackWait.nanoseconds
            config.MaxDeliver = Int64(configuration.maxDeliver)
            config.MaxAckPending = Int64(configuration.maxAckPending)
            let context = OpaquePointer(bitPattern: address)
            var code = jsErrCode(0)
            let added = js_AddConsumer(nil, context, stream, &config, nil, &code)
            if added == NATS_OK { return }
            guard code == JSConsumerNameExistErr || code == JSConsumerExistingActiveErr || code == jsErrCode(10148) else {
                throw NATSError(added, jetStreamCode: code, context: "creating consumer \(configuration.durable) on \(stream)")
            }
            guard updateExisting else { return }
            code = jsErrCode(0)
            try NATSError.check(
                js_UpdateConsumer(nil, context, stream, &config, nil, &code), jetStreamCode: code,
                "updating consumer \(configuration.durable) on \(stream)")
        }
    }

    /// The name of the server that leads a stream's replicas in a JetStream cluster, or `nil`
    /// when the stream is not clustered (a single server).
    public func streamLeader(_ stream: String) async throws -> String? {
        let address = self.address
        return try await BlockingCalls.run {
            var info: UnsafeMutablePointer<jsStreamInfo>?
            var code = jsErrCode(0)
            let status = js_GetStreamInfo(&info, OpaquePointer(bitPattern: address), stream, nil, &code)
            defer { jsStreamInfo_Destroy(info) }
            try NATSError.check(status, jetStreamCode: code, "reading stream \(stream)")
            return info?.pointee.Cluster?.pointee.Leader.map { String(cString: $0) }
        }
    }

    /// The configuration of a durable consumer as the server has it, or `nil` when there is none.
    public func consumer(stream: String, durable: String) async throws -> ConsumerConfiguration? {
        try await consumerInfo(stream: stream, durable: durable) { info in
            guard let config = info.Config?.pointee else { return nil }
            return ConsumerConfiguration(
                durable: durable, filterSubject: config.FilterSubject.map { String(cString: $0) },
                ackWait: .nanoseconds(config.AckWait), maxDeliver: Int(config.MaxDeliver), maxAckPending: Int(config.MaxAckPending))
        }
    }

    /// What `read` takes from a durable consumer's information, or `nil` when there is no such
    /// consumer (or stream).
    func consumerInfo<Value: Sendable>(
        stream: String, durable: String, _ read: @escaping @Sendable (jsConsumerInfo) -> Value?
    ) async throws -> Value? {
        let address = self.address
        return try await BlockingCalls.run {
            var info: UnsafeMutablePointer<jsConsumerInfo>?
            var code = jsErrCode(0)
            let status = js_GetConsumerInfo(&info, OpaquePointer(bitPattern: address), stream, durable, nil, &code)
            defer { jsConsumerInfo_Destroy(info) }
            if code == JSConsumerNotFoundErr || code == JSStreamNotFoundErr { return nil }
            try NATSError.check(status, jetStreamCode: code, "reading consumer \(durable) on \(stream)")
            return info.flatMap { read($0.pointee) }
        }
    }

    /// Publishes and waits for the stream's acknowledgement.
    /// - Throws: ``NATSError`` when no stream takes the subject or no ack comes within `timeout`.
    @discardableResult
    public func publish(_ message: OutgoingMessage, timeout: Duration = .seconds(5)) async throws -> PublishAck {
        let address = self.address
        return try await BlockingCalls.run {
            var msg: OpaquePointer?
            defer { natsMsg_Destroy(msg) }
            try message.makeNATSMessage(&msg)
            let strings = CStringArena()
            var options = try message.publishOptions(timeout: timeout, strings: strings)
            var ack: UnsafeMutablePointer<jsPubAck>?
            var code = jsErrCode(0)
            // The options point into `strings`: kept alive until libnats has read them.
            let status = withExtendedLifetime(strings) { js_PublishMsg(&ack, OpaquePointer(bitPattern: address), msg, &options, &code) }
            try NATSError.check(status, jetStreamCode: code, "publishing to \(message.subject)")
            defer { jsPubAck_Destroy(ack) }
            guard let ack else { throw NATSError(NATS_ERR, context: "publishing to \(message.subject): no acknowledgement") }
            return PublishAck(stream: String(cString: ack.pointee.Stream), sequence: ack.pointee.Sequence, duplicate: ack.pointee.Duplicate)
        }
    }

    /// Binds to an existing durable consumer (see ``ensureConsumer(stream:_:)``) for pulling.
    public func pullSubscription(stream: String, consumer: String, filterSubject: String) async throws -> PullSubscription {
        let address = self.address
        let subscription = try await BlockingCalls.run {
            let strings = CStringArena()
            var options = jsSubOptions()
            try NATSError.check(jsSubOptions_Init(&options), "initializing subscription options")
            options.Stream = strings.make(stream)
            options.Consumer = strings.make(consumer)
            var subscription: OpaquePointer?
            var code = jsErrCode(0)
            try NATSError.check(
                js_PullSubscribe(&subscription, OpaquePointer(bitPattern: address), filterSubject, consumer, nil, &options, &code),
                jetStreamCode: code, "binding to consumer \(consumer) on \(stream)")
            return UInt(bitPattern: subscription)
        }
        return PullSubscription(handle: OpaquePointer(bitPattern: subscription)!, connection: connection, jetStream: self)
    }
}

extension OutgoingMessage {
    /// Fills `msg` with a new libnats message of this subject, body and headers. The caller
    /// destroys it, also when this throws part of the way.
    func makeNATSMessage(_ msg: inout OpaquePointer?) throws {
        try payload.withUnsafeBytes { bytes in
            try NATSError.check(
                natsMsg_Create(&msg, subject, nil, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count)),
                "creating a message for \(subject)")
        }
        for header in headers {
            try NATSError.check(natsMsgHeader_Add(msg, header.name, header.value), "setting header \(header.name)")
        }
    }

    /// The JetStream publish options for this message: its id (for the stream's deduplication) and
    /// how long to wait for the acknowledgement. Their strings live as long as `strings`.
    func publishOptions(timeout: Duration, strings: CStringArena) throws -> jsPubOptions {
        var options = jsPubOptions()
        try NATSError.check(jsPubOptions_Init(&options), "initializing publish options")
        options.MaxWait = timeout.milliseconds
        options.MsgId = strings.make(messageID)
        return options
    }
}
