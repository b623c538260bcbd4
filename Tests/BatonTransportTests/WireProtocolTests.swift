import BatonCore
import BatonTransport
import Foundation
import Testing

/// The wire protocol's encoding and validation, without a server: what `docs/protocol.md` says a
/// command, a reply and a dead letter look like.
@Suite("Wire protocol")
struct WireProtocolTests {
    static let sagaID = "0190f5a4-7b1c-7d2e-8f00-000000000000"

    static let command = StepCommand(
        sagaID: sagaID, step: "debit-sender", participant: "ledger", action: "debit", direction: .action, attempt: 2,
        idempotencyKey: StepCommand.idempotencyKey(sagaID: sagaID, step: "debit-sender", direction: .action),
        deadline: Date(timeIntervalSince1970: 1_800_000_000.25), payload: ["account": "acc-alice", "amount": 2500],
        correlationID: "req-7f3a")

    /// The headers as a consumer receives them.
    static func received(_ message: OutgoingMessage) -> [String: [String]] {
        var headers: [String: [String]] = [:]
        for header in message.headers { headers[header.name, default: []].append(header.value) }
        if let id = message.messageID { headers["Nats-Msg-Id"] = [id] }
        return headers
    }

    @Test("a command carries every header the protocol names, and reads back")
    func commandRoundTrip() throws {
        var wire = CommandMessage(
            Self.command, workflow: "funds-transfer", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        wire.timeout = SagaDuration(milliseconds: 30_000)
        let outgoing = wire.outgoing
        #expect(outgoing.subject == "baton.cmd.ledger.debit")
        #expect(outgoing.messageID == "\(Self.sagaID).debit-sender.action.2")
        let headers = Self.received(outgoing)
        #expect(headers["Baton-Protocol"] == ["1"])
        #expect(headers["Baton-Saga-Id"] == [Self.sagaID])
        #expect(headers["Baton-Step"] == ["debit-sender"])
        #expect(headers["Baton-Direction"] == ["action"])
        #expect(headers["Baton-Attempt"] == ["2"])
        #expect(headers["Baton-Idempotency-Key"] == ["\(Self.sagaID).debit-sender.action"])
        #expect(headers["Baton-Deadline"] == ["2027-01-15T08:00:00.250Z"])
        #expect(headers["Baton-Timeout"] == ["30s"])
        #expect(headers["Baton-Correlation-Id"] == ["req-7f3a"])
        #expect(headers["traceparent"]?.first?.hasPrefix("00-4bf9") == true)
        #expect(String(decoding: outgoing.payload, as: UTF8.self) == #"{"account":"acc-alice","amount":2500}"#)

        let read = try CommandMessage(subject: outgoing.subject, headers: headers, payload: outgoing.payload)
        #expect(read == wire)
        #expect(read.replySubject == "baton.reply.ledger.debit")
        // Baton-Timeout is advice: an unreadable one is left out, and the command still reads.
        var odd = headers
        odd["Baton-Timeout"] = ["soon"]
        #expect(try CommandMessage(subject: outgoing.subject, headers: odd, payload: outgoing.payload).timeout == nil)
    }

    @Test("a command that breaks the protocol is refused with the reason")
    func malformedCommands() {
        let good = CommandMessage(Self.command).outgoing
        let headers = Self.received(good)
        func reason(
            subject: String = good.subject, change: (inout [String: [String]]) -> Void = { _ in }, payload: Data? = nil
        )
            -> String?
        {
            var changed = headers
            change(&changed)
            do {
                _ = try CommandMessage(subject: subject, headers: changed, payload: payload ?? good.payload)
                return nil
            } catch {
                return error.reason
            }
        }
        #expect(reason() == nil)
        #expect(reason(change: { $0["Baton-Attempt"] = nil }) == "header Baton-Attempt is missing")
        #expect(reason(change: { $0["Baton-Attempt"] = ["zero"] }) == "header Baton-Attempt must be a positive integer, got 'zero'")
        #expect(reason(change: { $0["Baton-Direction"] = ["sideways"] })?.contains("action or compensation") == true)
        #expect(reason(change: { $0["Baton-Deadline"] = ["tomorrow"] })?.contains("RFC 3339") == true)
        #expect(reason(change: { $0["Baton-Protocol"] = ["2"] }) == "unsupported protocol version 2")
        #expect(reason(change: { $0["Baton-Protocol"] = nil }) == "header Baton-Protocol is missing")
        #expect(reason(subject: "baton.cmd.ledger") != nil)
        #expect(reason(payload: Data("{not json".utf8))?.hasPrefix("the body is not strict JSON") == true)
        #expect(reason(payload: Data(#"{"amount": 1, "amount": 2}"#.utf8))?.contains("appears twice") == true)
    }

    @Test("every reply status round-trips, and heartbeats get their own message ids")
    func replies() throws {
        let command = CommandMessage(Self.command)
        let statuses: [ReplyStatus] = [
            .succeeded(output: ["entry_id": "e-1187"]), .succeeded(output: .null), .failed(code: "insufficient_funds", message: "low"),
            .retry(after: SagaDuration(milliseconds: 2000), message: "failing over"), .retry(after: nil, message: "busy"), .inProgress,
        ]
        for status in statuses {
            let reply = ReplyMessage(answering: command, status: status, heartbeat: 3)
            let outgoing = reply.outgoing
            #expect(outgoing.subject == "baton.reply.ledger.debit")
            let read = try ReplyMessage(subject: outgoing.subject, headers: Self.received(outgoing), payload: outgoing.payload)
            #expect(read.status == status)
            #expect(read.stepReply == StepReply(step: "debit-sender", direction: .action, attempt: 2, status: status))
            #expect(read.correlationID == "req-7f3a")
        }
        #expect(ReplyMessage(answering: command, status: .inProgress, heartbeat: 3).messageID.hasSuffix(".action.2.in_progress.3"))
        #expect(ReplyMessage(answering: command, status: .succeeded(output: 1)).messageID.hasSuffix(".action.2.succeeded"))
        let body = ReplyMessage(answering: command, status: .retry(after: .seconds(2), message: "m")).outgoing.payload
        #expect(String(decoding: body, as: UTF8.self) == #"{"message":"m","retry_after":"2s","status":"retry"}"#)
    }

    @Test("a reply that breaks the protocol is refused with the reason")
    func malformedReplies() {
        let good = ReplyMessage(answering: CommandMessage(Self.command), status: .inProgress).outgoing
        func reason(_ body: String) -> String? {
            do {
                _ = try ReplyMessage(subject: good.subject, headers: Self.received(good), payload: Data(body.utf8))
                return nil
            } catch {
                return error.reason
            }
        }
        #expect(reason(#"{"status":"in_progress"}"#) == nil)
        #expect(reason(#"{"status":"done"}"#)?.contains("unknown reply status 'done'") == true)
        #expect(reason(#"{"output":1}"#)?.contains("\"status\"") == true)
        #expect(reason(#"{"status":"failed"}"#)?.contains("error") == true)
        // A retry_after that cannot be read is left out: the reply is still a retry.
        #expect(reason(#"{"status":"retry","retry_after":"soon"}"#) == nil)
        #expect(reason(#"{"status":"retry","retry_after":5}"#) == nil)
        let unread = try? ReplyMessage(
            subject: good.subject, headers: Self.received(good), payload: Data(#"{"status":"retry","retry_after":"soon"}"#.utf8))
        #expect(unread?.status == .retry(after: nil, message: ""))
        #expect(reason("[]") != nil)
    }

    @Test("a dead letter keeps the original body and headers and says why")
    func deadLetter() {
        let original = CommandMessage(Self.command).outgoing
        let letter = DeadLetter.message(
            subject: original.subject, headers: Self.received(original), payload: original.payload, reason: "unknown action debit",
            source: "worker:ledger")
        #expect(letter.subject == "baton.dlq.cmd.ledger.debit")
        #expect(letter.payload == original.payload)
        #expect(letter.messageID == "dlq.\(Self.sagaID).debit-sender.action.2")
        let headers = Self.received(letter)
        #expect(headers["Baton-Dead-Letter-Reason"] == ["unknown action debit"])
        #expect(headers["Baton-Dead-Letter-Subject"] == ["baton.cmd.ledger.debit"])
        #expect(headers["Baton-Dead-Letter-Source"] == ["worker:ledger"])
        #expect(headers["Baton-Saga-Id"] == [Self.sagaID])
    }
}
