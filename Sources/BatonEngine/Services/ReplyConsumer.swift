import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle

/// Applies participants' replies: pulls them from the replies stream, hands each to the state
/// machine under its saga's row lock, commits, and only then acknowledges it.
///
/// A reply that is stale or a duplicate is recorded in the saga's history and acknowledged; one
/// already applied (a redelivery) is recognized by its message id in the inbox. A reply that cannot
/// be applied at all (malformed, for an unknown saga, unstorable) goes to the dead letters.
/// Replicas share one durable consumer, so each reply goes to one of them.
public struct ReplyConsumer: Service {
    let catalog: DefinitionCatalog
    let jetStream: JetStream
    let logger: Logger
    public var consumer = ConsumerConfiguration(durable: "baton-orchestrator", filterSubject: "baton.reply.>")
    /// Replies applied at once (different sagas proceed in parallel; one saga's replies serialize
    /// on its row lock).
    public var concurrency = 16
    /// The largest reply accepted, in bytes: its output is stored with the saga and rendered into
    /// later payloads, so an oversized one is dead-lettered (with the reason) before it is parsed.
    public var maximumReplyBytes = 256 * 1024

    public init(catalog: DefinitionCatalog, jetStream: JetStream, logger: Logger) {
        self.catalog = catalog
        self.jetStream = jetStream
        self.logger = logger
    }

    public func run() async throws {
        // Binding waits for NATS and may never succeed (a consumer that cannot be made): graceful
        // shutdown must end the wait as well as the consuming, or SIGTERM would hang here.
        try await cancelWhenGracefulShutdown { try await consume() }
    }

    private func consume() async throws {
        var bound: PullSubscription?
        while bound == nil {
            do {
                try await jetStream.ensureConsumer(stream: BatonStreams.replies.name, consumer)
                bound = try await jetStream.pullSubscription(
                    stream: BatonStreams.replies.name, consumer: consumer.durable, filterSubject: consumer.filterSubject ?? "baton.reply.>")
            } catch {
                if Task.isCancelled { return }
                logger.warning("cannot bind to the replies consumer yet; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        guard let subscription = bound else { return }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while !Task.isCancelled {
                if inFlight >= concurrency {
                    try await group.next()
                    inFlight -= 1
                }
                let batch: [JetStreamMessage]
                do {
                    batch = try await subscription.fetch(batch: concurrency - inFlight, maxWait: .seconds(1))
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("fetching replies failed; retrying", metadata: ["error": "\(StoreErrors.describe(error))"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                for message in batch {
                    group.addTask { await apply(message) }
                    inFlight += 1
                }
            }
            try await group.waitForAll()
        }
    }

    func apply(_ message: JetStreamMessage) async {
        guard message.payload.count <= maximumReplyBytes else {
            await deadLetter(
                message,
                reason:
                    "the reply is \(message.payload.count) bytes; replies (and the step output they carry) are limited to \(maximumReplyBytes) bytes"
            )
            return
        }
        let reply: ReplyMessage
        do {
            reply = try ReplyMessage(subject: message.subject, headers: message.headers, payload: message.payload)
        } catch {
            await deadLetter(message, reason: error.reason)
            return
        }
        var logger = self.logger
        logger[metadataKey: "saga.id"] = "\(reply.sagaID)"
        logger[metadataKey: "saga.step"] = "\(reply.step)"
        logger[metadataKey: "saga.attempt"] = "\(reply.attempt)"
        if let correlationID = reply.correlationID { logger[metadataKey: "correlation.id"] = "\(correlationID)" }
        if let trace = reply.traceparent.flatMap(SagaTrace.ids(of:)) { logger[metadataKey: "trace.id"] = "\(trace.traceID)" }
        // The reply's own message id identifies it across redeliveries; without one, its place in
        // the stream does.
        let inboxID = message.header(WireProtocol.Header.messageID) ?? message.metadata.map { "seq:\($0.streamSequence)" }
        do {
            let result = try await catalog.apply(
                .reply(reply.stepReply), to: reply.sagaID, inboxMessageID: inboxID, check: Self.subjectCheck(reply))
            if case .updated(let record, let transition) = result {
                catalog.metrics.replyApplied(publishedAt: message.metadata?.timestamp)
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
            guard let step = definition.steps.first(where: { $0.name == reply.step }) else { return }
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
        catalog.metrics.deadLettered()
        do {
            try await jetStream.publish(
                DeadLetter.message(
                    subject: message.subject, headers: message.headers, payload: message.payload, reason: reason, source: "orchestrator"))
            try message.term()
        } catch {
            try? message.nak(delay: .seconds(1))
        }
    }
}
