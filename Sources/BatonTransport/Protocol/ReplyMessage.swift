import BatonCore
import Foundation

/// A participant's reply on the wire (`docs/protocol.md`).
public struct ReplyMessage: Sendable, Hashable {
    public var participant: String
    public var action: String
    public var sagaID: String
    public var step: String
    public var direction: StepDirection
    public var attempt: Int
    public var status: ReplyStatus
    public var correlationID: String?
    public var traceparent: String?
    /// Makes each `in_progress` reply to one attempt a message id of its own: any number not used
    /// before for the attempt (the SDKs use the time in milliseconds, so that a count restarted by
    /// a redelivery is not dropped as a duplicate).
    public var heartbeat: Int

    /// The reply to `command`.
    public init(answering command: CommandMessage, status: ReplyStatus, heartbeat: Int = 0) {
        participant = command.participant
        action = command.action
        sagaID = command.sagaID
        step = command.step
        direction = command.direction
        attempt = command.attempt
        self.status = status
        correlationID = command.correlationID
        traceparent = command.traceparent
        self.heartbeat = heartbeat
    }

    public var subject: String { "\(WireProtocol.replyPrefix)\(participant).\(action)" }

    /// `<command's message id>.<status>`, plus the heartbeat count for `in_progress`.
    public var messageID: String {
        let command = "\(sagaID).\(step).\(direction.rawValue).\(attempt)"
        return if case .inProgress = status { "\(command).in_progress.\(heartbeat)" } else { "\(command).\(status.wireName)" }
    }

    /// What the state machine receives.
    public var stepReply: StepReply { StepReply(step: step, direction: direction, attempt: attempt, status: status) }

    public var outgoing: OutgoingMessage {
        typealias Header = WireProtocol.Header
        var headers: [(name: String, value: String)] = [
            (Header.protocolVersion, String(WireProtocol.version)),
            (Header.sagaID, sagaID),
            (Header.step, step),
            (Header.direction, direction.rawValue),
            (Header.attempt, String(attempt)),
        ]
        if let correlationID { headers.append((Header.correlationID, correlationID)) }
        if let traceparent { headers.append((Header.traceparent, traceparent)) }
        return OutgoingMessage(
            subject: subject, headers: headers, payload: Data(JSONWriter.text(of: ReplyBody.encode(status)).utf8), messageID: messageID)
    }

    /// Reads a delivered reply.
    /// - Throws: ``ProtocolViolation`` saying what is wrong: the reply goes to the dead letters.
    public init(subject: String, headers: [String: [String]], payload: Data) throws(ProtocolViolation) {
        typealias Header = WireProtocol.Header
        let reader = HeaderReader(headers: headers)
        try reader.checkVersion()
        (participant, action) = try HeaderReader.participantAndAction(of: subject, prefix: WireProtocol.replyPrefix)
        sagaID = try reader.required(Header.sagaID)
        step = try reader.required(Header.step)
        direction = try reader.direction()
        attempt = try reader.positiveInteger(Header.attempt)
        correlationID = reader.optional(Header.correlationID)
        traceparent = reader.optional(Header.traceparent)
        heartbeat = 0

        let body: JSONValue
        do {
            body = try JSONParser.parse(payload)
        } catch {
            throw ProtocolViolation("the body is not strict JSON: \(error)")
        }
        status = try ReplyBody.decode(body)
    }
}

/// The JSON body of a reply: `{"status": …}` with that status's fields.
public enum ReplyBody {
    public static func encode(_ status: ReplyStatus) -> JSONValue {
        var body: [String: JSONValue] = ["status": .string(status.wireName)]
        switch status {
        case .succeeded(let output): body["output"] = output
        case .failed(let code, let message): body["error"] = ["code": .string(code), "message": .string(message)]
        case .retry(let after, let message):
            body["message"] = .string(message)
            if let after { body["retry_after"] = .string(after.description) }
        case .inProgress: break
        }
        return .object(body)
    }

    /// - Throws: ``ProtocolViolation`` saying what is wrong with the body.
    public static func decode(_ body: JSONValue) throws(ProtocolViolation) -> ReplyStatus {
        guard case .object(let fields) = body, case .string(let status)? = fields["status"] else {
            throw ProtocolViolation("the body must be a JSON object with a string \"status\"")
        }
        switch status {
        case "succeeded":
            return .succeeded(output: fields["output"] ?? .null)
        case "failed":
            guard case .object(let error)? = fields["error"], case .string(let code)? = error["code"], !code.isEmpty else {
                throw ProtocolViolation("a failed reply needs \"error\": {\"code\": string, \"message\": string}")
            }
            return .failed(code: code, message: error["message"]?.stringValue ?? "")
        case "retry":
            // A retry_after that cannot be read is left out (the step's policy alone decides the
            // delay): the participant asked for a retry, and refusing the reply would cost a timeout.
            let after = fields["retry_after"]?.stringValue.flatMap(SagaDuration.init(parsing:))
            return .retry(after: after, message: fields["message"]?.stringValue ?? "")
        case "in_progress":
            return .inProgress
        default:
            throw ProtocolViolation("unknown reply status '\(status)': expected succeeded, failed, retry or in_progress")
        }
    }
}

extension ReplyStatus {
    /// The status as the protocol writes it.
    public var wireName: String {
        switch self {
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .retry: "retry"
        case .inProgress: "in_progress"
        }
    }
}

/// Builds the dead-letter copy of a message that cannot be processed.
public enum DeadLetter {
    /// - Parameters:
    ///   - subject: The original subject (`baton.cmd.ledger.debit`).
    ///   - source: Who gives up: `worker:<participant>` or `orchestrator`.
    public static func message(
        subject: String,
        headers: [String: [String]],
        payload: Data,
        reason: String,
        source: String
    ) -> OutgoingMessage {
        typealias Header = WireProtocol.Header
        var copied: [(name: String, value: String)] = []
        for (name, values) in headers.sorted(by: { $0.key < $1.key }) where !name.hasPrefix("Baton-Dead-Letter-") {
            for value in values { copied.append((name, value)) }
        }
        copied += [(Header.deadLetterReason, reason), (Header.deadLetterSubject, subject), (Header.deadLetterSource, source)]
        let suffix = subject.hasPrefix("baton.") ? String(subject.dropFirst("baton.".count)) : "other.\(subject)"
        return OutgoingMessage(
            subject: WireProtocol.deadLetterPrefix + suffix,
            headers: copied.filter { $0.name != Header.messageID },
            payload: payload,
            messageID: headers[Header.messageID]?.first.map { "dlq.\($0)" }
        )
    }
}
