import BatonCore
import Foundation

/// A command on the wire is the state machine's ``BatonCore/StepCommand`` itself: one type from the
/// decision to the participant, so that no field is copied, renamed or lost on the way. Its subject
/// and message id are the core's; this module adds how it travels (headers and body, both ways).
/// See `docs/protocol.md`.
public typealias CommandMessage = StepCommand

extension StepCommand {
    /// The same command, with the workflow and the trace context set when given.
    public init(_ command: StepCommand, workflow: String? = nil, traceparent: String? = nil) {
        self = command
        if let workflow { self.workflow = workflow }
        if let traceparent { self.traceparent = traceparent }
    }

    /// Where the answer goes: the command's subject with `cmd` replaced by `reply`.
    public var replySubject: String { "\(WireProtocol.replyPrefix)\(participant).\(action)" }

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
        if let timeout { headers.append((Header.timeout, timeout.description)) }
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
        // Read in the order the protocol document lists them: the first problem is the one reported.
        let (participant, action) = try HeaderReader.participantAndAction(of: subject, prefix: WireProtocol.commandPrefix)
        let sagaID = try reader.required(Header.sagaID)
        let workflow = reader.optional(Header.workflow)
        let step = try reader.required(Header.step)
        let direction = try reader.direction()
        let attempt = try reader.positiveInteger(Header.attempt)
        let idempotencyKey = try reader.required(Header.idempotencyKey)
        let deadline = try reader.required(Header.deadline)
        guard let time = WireTime.parse(deadline) else {
            throw ProtocolViolation("header \(Header.deadline) must be an RFC 3339 time, got '\(deadline)'")
        }
        let body: JSONValue
        do {
            body = try JSONParser.parse(payload)
        } catch {
            throw ProtocolViolation("the body is not strict JSON: \(error)")
        }
        self.init(
            sagaID: sagaID, step: step, participant: participant, action: action, direction: direction, attempt: attempt,
            idempotencyKey: idempotencyKey, deadline: time, payload: body, correlationID: reader.optional(Header.correlationID),
            traceparent: reader.optional(Header.traceparent), workflow: workflow,
            // Optional, and only advice: an older orchestrator sends none, and one that cannot be
            // read is left out rather than costing the command.
            timeout: reader.optional(Header.timeout).flatMap(SagaDuration.init(parsing:)))
    }
}

/// Times on the wire: RFC 3339 in UTC with milliseconds (`2026-11-21T14:05:30.250Z`).
enum WireTime {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func parse(_ text: String) -> Date? {
        (try? style.parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
