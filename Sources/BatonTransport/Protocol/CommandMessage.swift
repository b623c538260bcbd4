import BatonCore
import Foundation

/// A command on the wire: one attempt of a step's action or compensation (`docs/protocol.md`).
public struct CommandMessage: Sendable, Hashable {
    public var participant: String
    public var action: String
    public var sagaID: String
    public var workflow: String?
    public var step: String
    public var direction: StepDirection
    public var attempt: Int
    public var idempotencyKey: String
    public var deadline: Date
    public var correlationID: String?
    public var traceparent: String?
    public var payload: JSONValue

    public init(_ command: StepCommand, workflow: String? = nil, traceparent: String? = nil) {
        participant = command.participant
        action = command.action
        sagaID = command.sagaID
        self.workflow = workflow ?? command.workflow
        step = command.step
        direction = command.direction
        attempt = command.attempt
        idempotencyKey = command.idempotencyKey
        deadline = command.deadline
        correlationID = command.correlationID
        self.traceparent = traceparent ?? command.traceparent
        payload = command.payload
    }

    public var subject: String { "\(WireProtocol.commandPrefix)\(participant).\(action)" }
    /// Where the answer goes: the command's subject with `cmd` replaced by `reply`.
    public var replySubject: String { "\(WireProtocol.replyPrefix)\(participant).\(action)" }
    /// `<saga>.<step>.<direction>.<attempt>`.
    public var messageID: String { "\(sagaID).\(step).\(direction.rawValue).\(attempt)" }

    /// The message to publish.
    public var outgoing: OutgoingMessage {
        typealias Header = WireProtocol.Header
        var headers: [(name: String, value: String)] = [
            (Header.protocolVersion, String(WireProtocol.version)),
            (Header.sagaID, sagaID),
        ]
        if let workflow { headers.append((Header.workflow, workflow)) }
        headers += [
            (Header.step, step),
            (Header.direction, direction.rawValue),
            (Header.attempt, String(attempt)),
            (Header.idempotencyKey, idempotencyKey),
            (Header.deadline, deadline.formatted(WireTime.style)),
        ]
        if let correlationID { headers.append((Header.correlationID, correlationID)) }
        if let traceparent { headers.append((Header.traceparent, traceparent)) }
        return OutgoingMessage(
            subject: subject, headers: headers, payload: Data(JSONWriter.text(of: payload).utf8), messageID: messageID)
    }

    /// Reads a delivered command.
    /// - Throws: ``ProtocolViolation`` saying what is wrong: the message goes to the dead letters.
    public init(subject: String, headers: [String: [String]], payload: Data) throws(ProtocolViolation) {
        typealias Header = WireProtocol.Header
        let reader = HeaderReader(headers: headers)
        try reader.checkVersion()
        (participant, action) = try HeaderReader.participantAndAction(of: subject, prefix: WireProtocol.commandPrefix)
        sagaID = try reader.required(Header.sagaID)
        workflow = reader.optional(Header.workflow)
        step = try reader.required(Header.step)
        direction = try reader.direction()
        attempt = try reader.positiveInteger(Header.attempt)
        idempotencyKey = try reader.required(Header.idempotencyKey)
        let deadline = try reader.required(Header.deadline)
        guard let time = WireTime.parse(deadline) else {
            throw ProtocolViolation("header \(Header.deadline) must be an RFC 3339 time, got '\(deadline)'")
        }
        self.deadline = time
        correlationID = reader.optional(Header.correlationID)
        traceparent = reader.optional(Header.traceparent)
        do {
            self.payload = try JSONParser.parse(payload)
        } catch {
            throw ProtocolViolation("the body is not strict JSON: \(error)")
        }
    }
}

/// Times on the wire: RFC 3339 in UTC with milliseconds (`2026-11-21T14:05:30.250Z`).
enum WireTime {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func parse(_ text: String) -> Date? {
        (try? style.parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
