import CNATS
import Foundation

/// A stream's messages as its server holds them: how many, and a copy of one.
public struct StoredStreamMessage: Sendable, Hashable {
    public var sequence: UInt64
    public var subject: String
    /// Header values by name (a name may repeat).
    public var headers: [String: [String]]
    public var payload: Data
    /// When the stream stored it.
    public var storedAt: Date
}

/// What a durable consumer has, as its server counts it.
public struct ConsumerState: Sendable, Hashable {
    /// Messages in the stream not yet delivered to it.
    public var pending: UInt64
    /// Delivered and not yet acknowledged.
    public var unacknowledged: Int
    /// Pull requests waiting at the server now: a worker that fetches is waiting here.
    public var waitingPulls: Int
    /// When it last delivered a message, if it has.
    public var lastDelivery: Date?
}

extension JetStream {
    /// How many messages a stream holds, and the sequence of its newest, or `nil` when there is no
    /// such stream.
    public func streamCounts(_ stream: String) async throws -> (messages: UInt64, lastSequence: UInt64, firstSequence: UInt64)? {
        let address = self.address
        return try await BlockingCalls.run {
            var info: UnsafeMutablePointer<jsStreamInfo>?
            var code = jsErrCode(0)
            let status = js_GetStreamInfo(&info, OpaquePointer(bitPattern: address), stream, nil, &code)
            defer { jsStreamInfo_Destroy(info) }
            if code == JSStreamNotFoundErr { return nil }
            try NATSError.check(status, jetStreamCode: code, "reading stream \(stream)")
            guard let state = info?.pointee.State else { return nil }
            return (state.Msgs, state.LastSeq, state.FirstSeq)
        }
    }

    /// The newest messages of a stream, newest first, at most `limit` of them (a message deleted
    /// between the count and the read is passed over).
    public func newestMessages(stream: String, limit: Int) async throws -> [StoredStreamMessage] {
        guard limit > 0, let counts = try await streamCounts(stream), counts.messages > 0 else { return [] }
        let address = self.address
        return try await BlockingCalls.run {
            var messages: [StoredStreamMessage] = []
            var sequence = counts.lastSequence
            while messages.count < limit && sequence >= max(counts.firstSequence, 1) {
                var message: OpaquePointer?
                var code = jsErrCode(0)
                let status = js_GetMsg(&message, OpaquePointer(bitPattern: address), stream, sequence, nil, &code)
                defer { natsMsg_Destroy(message) }
                if status == NATS_OK, let message {
                    messages.append(StoredStreamMessage(copying: message, sequence: sequence))
                } else if status != NATS_NOT_FOUND && code != JSNoMessageFoundErr {
                    try NATSError.check(status, jetStreamCode: code, "reading message \(sequence) of \(stream)")
                }
                sequence -= 1
            }
            return messages
        }
    }

    /// A durable consumer's counts, or `nil` when there is no such consumer.
    public func consumerState(stream: String, durable: String) async throws -> ConsumerState? {
        try await consumerInfo(stream: stream, durable: durable) { info in
            let last = info.Delivered.Last
            return ConsumerState(
                pending: info.NumPending, unacknowledged: Int(clamping: info.NumAckPending), waitingPulls: Int(clamping: info.NumWaiting),
                lastDelivery: last > 0 ? Date(timeIntervalSince1970: Double(last) / 1_000_000_000) : nil)
        }
    }
}

extension StoredStreamMessage {
    /// Copies a message read from a stream by sequence (its headers, subject and stored time).
    init(copying message: OpaquePointer, sequence: UInt64) {
        let copy = JetStreamMessage.copyContent(message)
        self.init(
            sequence: sequence, subject: copy.subject, headers: copy.headers, payload: copy.payload,
            storedAt: Date(timeIntervalSince1970: Double(natsMsg_GetTime(message)) / 1_000_000_000))
    }
}
