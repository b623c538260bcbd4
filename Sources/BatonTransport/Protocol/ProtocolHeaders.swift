import BatonCore

/// Names and constants of the wire protocol (`docs/protocol.md`).
public enum WireProtocol {
    /// The major version this build speaks.
    public static let version = 1

    public enum Header {
        public static let protocolVersion = "Baton-Protocol"
        public static let messageID = "Nats-Msg-Id"
        public static let sagaID = "Baton-Saga-Id"
        public static let workflow = "Baton-Workflow"
        public static let step = "Baton-Step"
        public static let direction = "Baton-Direction"
        public static let attempt = "Baton-Attempt"
        public static let idempotencyKey = "Baton-Idempotency-Key"
        public static let deadline = "Baton-Deadline"
        public static let timeout = "Baton-Timeout"
        public static let correlationID = "Baton-Correlation-Id"
        public static let traceparent = "traceparent"
        public static let deadLetterReason = "Baton-Dead-Letter-Reason"
        public static let deadLetterSubject = "Baton-Dead-Letter-Subject"
        public static let deadLetterSource = "Baton-Dead-Letter-Source"
    }

    static let commandPrefix = "baton.cmd."
    static let replyPrefix = "baton.reply."
    static let deadLetterPrefix = "baton.dlq."
}

/// A message that does not follow the protocol, with the reason (it goes to the dead letters).
public struct ProtocolViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Reads the protocol's headers, naming what is missing or malformed.
struct HeaderReader {
    let headers: [String: [String]]

    func optional(_ name: String) -> String? { headers[name]?.first }

    func required(_ name: String) throws(ProtocolViolation) -> String {
        guard let value = headers[name]?.first, !value.isEmpty else { throw ProtocolViolation("header \(name) is missing") }
        return value
    }

    func positiveInteger(_ name: String) throws(ProtocolViolation) -> Int {
        let text = try required(name)
        guard let value = Int(text), value > 0 else {
            throw ProtocolViolation("header \(name) must be a positive integer, got '\(text)'")
        }
        return value
    }

    /// `Baton-Direction`: `action` or `compensation`.
    func direction() throws(ProtocolViolation) -> StepDirection {
        let text = try required(WireProtocol.Header.direction)
        guard let direction = StepDirection(rawValue: text) else {
            throw ProtocolViolation("header \(WireProtocol.Header.direction) must be action or compensation, got '\(text)'")
        }
        return direction
    }

    /// The participant and action of a `<prefix><participant>.<action>` subject.
    static func participantAndAction(of subject: String, prefix: String) throws(ProtocolViolation) -> (String, String) {
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        guard tokens.count == 4, subject.hasPrefix(prefix) else {
            throw ProtocolViolation("subject \(subject) is not \(prefix)<participant>.<action>")
        }
        return (String(tokens[2]), String(tokens[3]))
    }

    func checkVersion() throws(ProtocolViolation) {
        let text = try required(WireProtocol.Header.protocolVersion)
        guard Int(text) == WireProtocol.version else { throw ProtocolViolation("unsupported protocol version \(text)") }
    }
}
