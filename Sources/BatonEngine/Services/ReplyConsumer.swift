import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle

/// Applies participants' replies: pulls them from the replies stream, hands each to the state
/// machine under its saga's row lock, commits, and only then acknowledges it. The replies of one
/// fetch are applied together, in one transaction (``SagaRunner/apply(batch:)``): under
/// load one commit serves many replies, and a lone reply goes at once, waiting for no company.
///
/// A reply that is stale or a duplicate is recorded in the saga's history and acknowledged; one
/// already applied (a redelivery) is recognized by its message id in the inbox. A reply that cannot
/// be applied at all (malformed, for an unknown saga, unstorable) goes to the dead letters.
/// Replicas share one durable consumer, so each reply goes to one of them.
public struct ReplyConsumer: Service {
    let runner: SagaRunner
    let jetStreams: JetStreamSource
    let logger: Logger
    public var consumer = ConsumerConfiguration(durable: "baton-orchestrator", filterSubject: "baton.reply.>")
    /// The most replies fetched, and applied, at once.
    public var batchSize = 64
    /// Batches applied at once (a saga's replies in two of them serialize on its row lock).
    public var batchesInFlight = 4
    /// The largest reply accepted, in bytes: its output is stored with the saga and rendered into
    /// later payloads, so an oversized one is dead-lettered (with the reason) before it is parsed.
    public var maximumReplyBytes = 256 * 1024

    /// - Parameter jetStreams: Where it gets its JetStream context, each time it binds (the
    ///   process's ``NATSClient``).
    public init(runner: SagaRunner, jetStreams: JetStreamSource, logger: Logger) {
        self.runner = runner
        self.jetStreams = jetStreams
        self.logger = logger
    }

    public func run() async throws {
        // Binding waits for NATS and may never succeed (a consumer that cannot be made): graceful
        // shutdown must end the wait as well as the consuming, or SIGTERM would hang here.
        try await cancelWhenGracefulShutdown { try await consume() }
    }

    private func consume() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while !Task.isCancelled {
                guard let subscription = await bind() else { break }
                // Fetch until the connection is closed for good; then bind again on the client's
                // new one (replies not acknowledged meanwhile are redelivered by JetStream).
                while !Task.isCancelled {
                    if inFlight >= batchesInFlight {
                        try await group.next()
                        inFlight -= 1
                    }
                    let batch: [JetStreamMessage]
                    do {
                        batch = try await subscription.fetch(batch: batchSize, maxWait: .seconds(1))
                    } catch {
                        if Task.isCancelled { break }
                        if subscription.connection.state == .closed {
                            logger.warning("the replies subscription's connection was closed; binding again")
                            break
                        }
                        logger.warning("fetching replies failed; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                    guard !batch.isEmpty else { continue }
                    group.addTask { await apply(batch) }
                    inFlight += 1
                }
            }
            try await group.waitForAll()
        }
    }

    /// Binds to the replies consumer (making it if needed) on the current connection, retrying
    /// while NATS is away. - Returns: `nil` once cancelled or the client has stopped.
    private func bind() async -> PullSubscription? {
        while !Task.isCancelled {
            do {
                let jetStream = try await jetStreams.jetStream()
                try await jetStream.ensureConsumer(stream: BatonStreams.replies.name, consumer)
                return try await jetStream.pullSubscription(
                    stream: BatonStreams.replies.name, consumer: consumer.durable, filterSubject: consumer.filterSubject ?? "baton.reply.>")
            } catch {
                if Task.isCancelled || error is NATSClientStopped { return nil }
                logger.warning("cannot bind to the replies consumer yet; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        return nil
    }

    /// Applies a fetch's replies together; each is then acknowledged, dead-lettered or redelivered
    /// on its own result.
    func apply(_ messages: [JetStreamMessage]) async {
        var accepted: [(message: JetStreamMessage, reply: ReplyMessage)] = []
        for message in messages {
            if let reply = await accept(message) { accepted.append((message, reply)) }
        }
        let results = await runner.apply(
            batch: accepted.map { message, reply in
                SagaEventRequest(
                    event: .reply(reply.stepReply), sagaID: reply.sagaID, inboxMessageID: Self.inboxID(of: message),
                    check: Self.subjectCheck(reply))
            })
        for ((message, reply), result) in zip(accepted, results) { await settle(message, reply, result) }
    }

    /// The reply a message carries, or `nil` when it is too large or malformed (then dead-lettered).
    private func accept(_ message: JetStreamMessage) async -> ReplyMessage? {
        guard message.payload.count <= maximumReplyBytes else {
            await deadLetter(
                message,
                reason:
                    "the reply is \(message.payload.count) bytes; replies (and the step output they carry) are limited to \(maximumReplyBytes) bytes"
            )
            return nil
        }
        do {
            return try ReplyMessage(subject: message.subject, headers: message.headers, payload: message.payload)
        } catch {
            await deadLetter(message, reason: error.reason)
            return nil
        }
    }

    /// The reply's own message id identifies it across redeliveries; without one, its place in the
    /// stream does.
    private static func inboxID(of message: JetStreamMessage) -> String? {
        message.header(WireProtocol.Header.messageID) ?? message.metadata.map { "seq:\($0.streamSequence)" }
    }

    /// Acknowledges, dead-letters or redelivers a reply on the result of applying it.
    private func settle(_ message: JetStreamMessage, _ reply: ReplyMessage, _ applied: Result<SagaUpdateResult, any Error>) async {
        var logger = self.logger
        logger[metadataKey: "saga.id"] = "\(reply.sagaID)"
        logger[metadataKey: "saga.step"] = "\(reply.step)"
        logger[metadataKey: "saga.attempt"] = "\(reply.attempt)"
        if let correlationID = reply.correlationID { logger[metadataKey: "correlation.id"] = "\(correlationID)" }
        if let trace = reply.traceparent.flatMap(SagaTrace.ids(of:)) { logger[metadataKey: "trace.id"] = "\(trace.traceID)" }
        do {
            let result = try applied.get()
            if case .updated(let record, let transition) = result {
                runner.metrics.replyApplied(publishedAt: message.metadata?.timestamp)
                switch transition.outcome {
                case .applied:
                    logger.debug(
                        "reply applied",
                        metadata: ["reply.status": "\(reply.status.wireName)", "saga.status": "\(record.saga.status.rawValue)"])
                case .ignored(let reason, let detail):
                    // Stale and duplicate replies are normal under retries; the metric counts them.
                    logger.debug("reply ignored", metadata: ["reason": "\(reason.rawValue)", "detail": "\(detail)"])
                case .rejected(let reason):
                    logger.notice("reply refused", metadata: ["reason": "\(reason)"])
                }
            }
            try message.ack()
        } catch let error as MisaddressedReply {
            await deadLetter(message, reason: error.description)
        } catch let error as SagaStoreError {
            switch error {
            case .sagaNotFound, .invalidSagaID, .unstorableValue, .corruptRow, .definitionNotFound:
                await deadLetter(message, reason: error.description)
            default:
                logger.warning("reply not applied; it will be redelivered", metadata: ["error": "\(StoreErrors.describe(error))"])
                try? message.nak(delay: .seconds(1))
            }
        } catch {
            logger.warning("reply not applied; it will be redelivered", metadata: ["error": "\(StoreErrors.describe(error))"])
            try? message.nak(delay: .seconds(1))
        }
    }

    /// Checks that the reply came on its step's subject: `baton.reply.<participant>.<action>` of the
    /// step and direction its headers name. A step the workflow does not have is left to the state
    /// machine, which records the reply as ignored.
    static func subjectCheck(_ reply: ReplyMessage) -> EventCheck {
        { definition in
            guard let step = definition.allSteps.first(where: { $0.name == reply.step }) else { return }
            let action = reply.direction == .action ? step.action : step.compensate?.action
            guard reply.participant == step.participant, reply.action == action else {
                throw MisaddressedReply(
                    description:
                        "the reply came on baton.reply.\(reply.participant).\(reply.action), but step '\(step.name)' (\(reply.direction.rawValue)) is answered on baton.reply.\(step.participant).\(action ?? "-")"
                )
            }
        }
    }

    func deadLetter(_ message: JetStreamMessage, reason: String) async {
        logger.error("reply sent to the dead letters", metadata: ["reason": "\(reason)", "subject": "\(message.subject)"])
        runner.metrics.deadLettered()
        do {
            try await jetStreams.jetStream().publish(
                DeadLetter.message(
                    subject: message.subject, headers: message.headers, payload: message.payload, reason: reason, source: "orchestrator"))
            try message.term()
        } catch {
            try? message.nak(delay: .seconds(1))
        }
    }
}
