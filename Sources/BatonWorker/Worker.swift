import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

/// A participant's worker: a `Service` that consumes the participant's commands from JetStream,
/// runs the registered handler, publishes the typed reply and only then acknowledges the command.
///
/// Every process of a participant binds to one durable consumer (named after the participant), so
/// they split the work. A command that cannot be processed at all (not following the protocol, or
/// naming an action with no handler) goes to the dead letters with the reason and is terminated;
/// the worker keeps consuming. On graceful shutdown it stops fetching and finishes the commands in
/// hand.
public struct Worker: Service {
    public struct Configuration: Sendable {
        /// The participant name in workflow definitions (`ledger`): commands arrive on
        /// `baton.cmd.<participant>.<action>`.
        public var participant: String
        public var nats: NATSConnection.Options
        /// Commands handled at once by this process.
        public var concurrency: Int
        /// How long JetStream waits for an ack or a heartbeat before redelivering a command.
        public var ackWait: Duration
        /// Send `in_progress` (and `+WPI`) while a handler runs. Turn off only to let long work time
        /// out on purpose.
        public var heartbeats: Bool

        public init(
            participant: String,
            nats: NATSConnection.Options,
            concurrency: Int = 8,
            ackWait: Duration = .seconds(30),
            heartbeats: Bool = true
        ) {
            self.participant = participant
            self.nats = nats
            self.concurrency = concurrency
            self.ackWait = ackWait
            self.heartbeats = heartbeats
        }
    }

    public let configuration: Configuration
    let handlers: WorkerHandlers
    let logger: Logger
    let metrics: WorkerMetrics
    /// The NATS client it takes its connection from; `nil`: one of its own, from
    /// ``Configuration/nats``.
    let nats: NATSClient?

    /// - Parameter nats: A NATS client the process runs as a service of its own (in the group before
    ///   this worker, so that it closes only after the worker has drained). Without one, the worker
    ///   runs its own client from ``Configuration/nats``, with the participant's inbox prefix.
    public init(
        configuration: Configuration, handlers: WorkerHandlers, logger: Logger, metrics: WorkerMetrics = WorkerMetrics(),
        nats: NATSClient? = nil
    ) {
        self.configuration = configuration
        self.nats = nats
        self.handlers = handlers
        self.logger = logger
        self.metrics = metrics
    }

    /// The durable consumer every process of the participant shares.
    public var consumer: ConsumerConfiguration {
        BatonStreams.participantConsumer(configuration.participant, ackWait: configuration.ackWait)
    }

    public func run() async throws {
        let stopping = StopFlag()
        var options = configuration.nats
        options.inboxPrefix = options.inboxPrefix ?? BatonStreams.inboxPrefix(participant: configuration.participant)
        let client = nats ?? NATSClient(options: options, logger: logger)
        // A client of its own runs outside graceful shutdown (a detached task inherits none), so that
        // it closes the connection only after the worker has drained, when it is cancelled below.
        let ownClient = nats == nil ? Task.detached { try await client.run() } : nil
        try await withGracefulShutdownHandler {
            // The client replaces a connection libnats has closed for good (it can happen when the
            // server goes away in the middle of the first handshake): ask it again then.
            while !stopping.isSet && !Task.isCancelled {
                let connection: NATSConnection
                do {
                    connection = try await client.connection()
                } catch {
                    break
                }
                try await consume(on: connection, stopping: stopping)
                if connection.state == .closed && !stopping.isSet && !Task.isCancelled {
                    logger.warning("the NATS connection was closed; taking the client's next one")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        } onGracefulShutdown: {
            stopping.set()
        }
        ownClient?.cancel()
        _ = await ownClient?.result
        logger.info("worker stopped", metadata: ["participant": "\(configuration.participant)"])
    }

    /// Consumes commands until stopped, or until `connection` is closed for good.
    private func consume(on connection: NATSConnection, stopping: StopFlag) async throws {
        let jetStream = try JetStream(connection)
        // NATS may not be up yet: keep trying until it is (or the worker is stopped).
        var subscription: PullSubscription?
        while subscription == nil {
            do {
                do {
                    // A consumer already as configured needs nothing managed: the common case, and
                    // the only one a confined participant (which may read its consumer, not change
                    // it) can be in; asking the server to change anything would cost it a timeout.
                    switch try await jetStream.consumer(stream: BatonStreams.commands.name, durable: consumer.durable) {
                    case nil:
                        for stream in BatonStreams.all { try await jetStream.ensureStream(stream, updateExisting: false) }
                        try await jetStream.ensureConsumer(stream: BatonStreams.commands.name, consumer)
                    case let existing? where existing != consumer:
                        // Its stream exists: only the consumer is brought to this configuration.
                        try await jetStream.ensureConsumer(stream: BatonStreams.commands.name, consumer)
                    default:
                        break
                    }
                } catch {
                    // A participant whose NATS user may only consume its own commands cannot manage
                    // streams or consumers; the orchestrator has made them. Binding says whether
                    // they are there.
                    logger.debug(
                        "cannot manage the streams or the consumer; binding to the ones provisioned",
                        metadata: ["error": "\(StoreErrors.describe(error))"])
                }
                subscription = try await jetStream.pullSubscription(
                    stream: BatonStreams.commands.name, consumer: consumer.durable, filterSubject: consumer.filterSubject ?? "")
            } catch {
                if Task.isCancelled || stopping.isSet || connection.state == .closed { return }
                logger.warning("cannot set up the command consumer yet; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        guard let subscription else { return }
        logger.info("worker started", metadata: ["participant": "\(configuration.participant)"])

        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while !stopping.isSet && !Task.isCancelled {
                if inFlight >= configuration.concurrency {
                    try await group.next()
                    inFlight -= 1
                }
                let batch: [JetStreamMessage]
                do {
                    batch = try await subscription.fetch(batch: configuration.concurrency - inFlight, maxWait: .milliseconds(500))
                } catch {
                    if Task.isCancelled || stopping.isSet || connection.state == .closed { break }
                    // NATS is away (libnats reconnects by itself): try again shortly.
                    logger.warning("fetching commands failed; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                for message in batch {
                    if stopping.isSet {
                        // Not started: hand it back to the other processes at once.
                        try? message.nak()
                        continue
                    }
                    group.addTask { await process(message, jetStream: jetStream) }
                    inFlight += 1
                }
            }
            try await group.waitForAll()
        }
    }

    /// Handles one delivered command from start to ack.
    func process(_ message: JetStreamMessage, jetStream: JetStream) async {
        let command: CommandMessage
        do {
            command = try CommandMessage(subject: message.subject, headers: message.headers, payload: message.payload)
        } catch {
            await deadLetter(message, reason: error.reason, jetStream: jetStream)
            return
        }
        guard let handler = handlers.handler(action: command.action, direction: command.direction) else {
            await deadLetter(
                message,
                reason: "participant \(configuration.participant) has no \(command.direction.rawValue) handler for '\(command.action)'",
                jetStream: jetStream)
            return
        }
        var scoped = self.logger
        scoped[metadataKey: "saga.id"] = "\(command.sagaID)"
        scoped[metadataKey: "saga.step"] = "\(command.step)"
        scoped[metadataKey: "saga.direction"] = "\(command.direction.rawValue)"
        scoped[metadataKey: "saga.attempt"] = "\(command.attempt)"
        if let correlationID = command.correlationID { scoped[metadataKey: "correlation.id"] = "\(correlationID)" }
        if let trace = command.traceparent.flatMap(SagaTrace.ids(of:)) { scoped[metadataKey: "trace.id"] = "\(trace.traceID)" }
        if let delivery = message.metadata, delivery.deliveryCount > 1 {
            scoped.debug("command redelivered", metadata: ["delivery.count": "\(delivery.deliveryCount)"])
            metrics.redelivered(participant: configuration.participant)
        }

        let logger = scoped
        // A span per command, a child of the trace the command carries, for whichever tracer the
        // process bootstrapped (none by default: then this costs next to nothing).
        var traceContext = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(message.headers, into: &traceContext, using: NATSHeadersExtractor())
        let started = ContinuousClock.now
        let inFlight = metrics.inFlight(participant: configuration.participant)
        inFlight.increment()
        defer { inFlight.decrement() }
        await withSpan("\(configuration.participant).\(command.action)", context: traceContext, ofKind: .consumer) { span in
            span.attributes["baton.saga.id"] = command.sagaID
            span.attributes["baton.saga.step"] = command.step
            span.attributes["baton.saga.direction"] = command.direction.rawValue
            span.attributes["baton.saga.attempt"] = command.attempt
            let status = await run(handler, for: command, message: message, jetStream: jetStream, logger: logger)
            span.attributes["baton.reply.status"] = status.wireName
            if case .failed = status { span.setStatus(SpanStatus(code: .error)) }
            metrics.handled(command, participant: configuration.participant, outcome: status.wireName, since: started)
        }
    }

    /// Runs `handler` (with heartbeats) and publishes its reply, then acknowledges the command.
    /// Returns the status replied.
    private func run(
        _ handler: @escaping WorkerHandlers.Handler, for command: CommandMessage, message: JetStreamMessage, jetStream: JetStream,
        logger: Logger
    ) async -> ReplyStatus {
        let outcome = await withTaskGroup(of: HandlerOutcome?.self) { group in
            group.addTask {
                do {
                    return .reply(try await handler(HandlerContext(command: command, logger: logger)))
                } catch is ReplyDeferred {
                    return .deferred
                } catch {
                    // Whatever escapes a handler (its database is down, say) had no effect: retry.
                    return .reply(.retry(after: nil, message: String(describing: error)))
                }
            }
            if configuration.heartbeats {
                group.addTask {
                    await heartbeat(for: command, message: message, jetStream: jetStream, logger: logger)
                    return nil
                }
            }
            var outcome = HandlerOutcome.reply(.retry(after: nil, message: "the handler did not finish"))
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                }
            }
            return outcome
        }

        // A deferred command is acknowledged after an `in_progress` reply: the handler has stored it
        // and answers it later through `DeferredReply.answer`.
        let status: ReplyStatus
        switch outcome {
        case .reply(let replied): status = replied
        case .deferred: status = .inProgress
        }
        do {
            try await jetStream.publish(ReplyMessage(answering: command, status: status).outgoing)
            try message.ack()
            logger.debug("command answered", metadata: ["reply.status": "\(status.wireName)"])
        } catch {
            // Unacknowledged, the command comes back; the barrier then returns the stored result.
            logger.warning("reply not published; the command will be redelivered", metadata: ["error": "\(StoreErrors.describe(error))"])
            metrics.replyFailed(participant: configuration.participant)
            try? message.nak(delay: .seconds(1))
        }
        return status
    }

    /// What a handler came to: a reply now, or one it will send later.
    enum HandlerOutcome {
        case reply(ReplyStatus)
        case deferred
    }

    /// Until cancelled: at half the time left before the command's deadline (and JetStream's ack
    /// wait), tell both that the work goes on.
    func heartbeat(for command: CommandMessage, message: JetStreamMessage, jetStream: JetStream, logger: Logger) async {
        let untilDeadline = Duration.milliseconds(Int64(max(0, command.deadline.timeIntervalSinceNow) * 1000))
        let interval = max(.milliseconds(100), min(untilDeadline, configuration.ackWait) / 2)
        while true {
            do { try await Task.sleep(for: interval) } catch { return }
            // The time in milliseconds: unique across redeliveries of the command, unlike a count
            // restarted at each delivery (JetStream would drop a repeated id as a duplicate).
            let beat = Int((Date.now.timeIntervalSince1970 * 1000).rounded())
            do {
                try message.inProgress()
                try await jetStream.publish(ReplyMessage(answering: command, status: .inProgress, heartbeat: beat).outgoing)
                logger.debug("heartbeat sent", metadata: ["heartbeat": "\(beat)"])
            } catch {
                logger.warning("heartbeat not sent", metadata: ["error": "\(StoreErrors.describe(error))"])
            }
        }
    }

    func deadLetter(_ message: JetStreamMessage, reason: String, jetStream: JetStream) async {
        metrics.deadLettered(participant: configuration.participant)
        logger.error(
            "command sent to the dead letters", metadata: ["reason": "\(reason)", "subject": "\(message.subject)"])
        do {
            try await jetStream.publish(
                DeadLetter.message(
                    subject: message.subject, headers: message.headers, payload: message.payload, reason: reason,
                    source: "worker:\(configuration.participant)"))
            try message.term()
        } catch {
            logger.warning(
                "dead letter not published; the command will be redelivered", metadata: ["error": "\(StoreErrors.describe(error))"])
            try? message.nak(delay: .seconds(1))
        }
    }
}

/// Reads trace context headers (`traceparent`, `tracestate`) from a NATS message's headers.
struct NATSHeadersExtractor: Extractor {
    func extract(key: String, from carrier: [String: [String]]) -> String? { carrier[key]?.first }
}

/// Set once, when graceful shutdown begins.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
