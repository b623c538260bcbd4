import BatonCore
import BatonTransport
import Foundation

/// Thrown by a handler that has kept the command (as a ``DeferredReply``) and will answer it
/// later, from outside the handler: a payment provider's callback, a person's approval.
///
/// The worker then replies `in_progress` at once (the engine restarts the step's timeout from
/// now) and acknowledges the command, so that JetStream does not redeliver it while it waits. If
/// no answer comes within the step's timeout, the engine times the step out as usual.
public struct ReplyDeferred: Error, Sendable, Hashable {
    public init() {}
}

/// A command whose reply was deferred, in a form to store (in the participant's own database, in
/// the transaction that decided to wait) and to answer from any process later.
public struct DeferredReply: Codable, Sendable, Hashable {
    /// The command exactly as it was delivered: subject, headers and payload.
    public var subject: String
    public var headers: [String: [String]]
    public var payload: String

    public init(_ command: CommandMessage) {
        let outgoing = command.outgoing
        subject = outgoing.subject
        var headers: [String: [String]] = [:]
        for header in outgoing.headers { headers[header.name, default: []].append(header.value) }
        if let messageID = outgoing.messageID { headers[WireProtocol.Header.messageID] = [messageID] }
        self.headers = headers
        payload = String(decoding: outgoing.payload, as: UTF8.self)
    }

    /// The command again, to answer.
    public func command() throws(ProtocolViolation) -> CommandMessage {
        try CommandMessage(subject: subject, headers: headers, payload: Data(payload.utf8))
    }

    /// The stored form, as one JSON document.
    public var json: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self) }

    /// Reads the stored form.
    public init(json: String) throws {
        self = try JSONDecoder().decode(DeferredReply.self, from: Data(json.utf8))
    }

    /// Publishes the reply `status` to the command, waiting for JetStream's ack. Publishing the same
    /// answer twice is harmless: the reply's message id is derived from the command and the status,
    /// so JetStream stores it once, and the engine ignores a repeat as a duplicate.
    public func answer(_ status: ReplyStatus, on jetStream: JetStream) async throws {
        try await jetStream.publish(ReplyMessage(answering: try command(), status: status).outgoing)
    }
}
