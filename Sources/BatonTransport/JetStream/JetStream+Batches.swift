import CNATS
import Foundation
import Synchronization

extension JetStream {
    /// Publishes several messages without waiting for each acknowledgement in turn: every message
    /// is handed to libnats at once (one hop to a blocking thread for the whole batch), and the
    /// stream's acknowledgements are collected as they come back.
    ///
    /// A batch of commands used to cost one blocking thread and one round trip per message, up to
    /// eight at a time; now it costs one hop and the acknowledgements overlap.
    /// - Returns: One result per message, in order: the acknowledgement, or why there is none (the
    ///   stream refused it, or no acknowledgement came within `timeout`).
    public func publish(batch messages: [OutgoingMessage], timeout: Duration = .seconds(5)) async -> [Result<PublishAck, any Error>] {
        guard !messages.isEmpty else { return [] }
        let slots = messages.map { _ in AcknowledgementSlot() }
        let address = UInt(bitPattern: handle)
        let pending = self.pending
        do {
            try await BlockingCalls.run {
                for (message, slot) in zip(messages, slots) {
                    Self.publishAsynchronously(message, to: address, timeout: timeout, pending: pending, slot: slot)
                }
            }
        } catch {
            // The blocking pool is shut down (the process is ending): nothing was handed over.
            return messages.map { _ in .failure(error) }
        }
        // libnats answers every publish by `MaxWait`, with the acknowledgement or a timeout. Should
        // it ever not (a connection closed under it), the batch still ends: a waiter that never
        // returned would stop every command behind it.
        let watchdog = Task {
            try await Task.sleep(for: timeout + .seconds(1))
            for slot in slots {
                slot.resolve(.failure(NATSError(NATS_TIMEOUT, context: "no acknowledgement within \(timeout)")))
            }
        }
        defer { watchdog.cancel() }
        var results: [Result<PublishAck, any Error>] = []
        results.reserveCapacity(slots.count)
        for slot in slots { results.append(await slot.result()) }
        return results
    }

    /// Hands one message to libnats; its slot is resolved by ``acknowledgementReceived`` (or here,
    /// when libnats refuses it at once).
    private static func publishAsynchronously(
        _ message: OutgoingMessage, to address: UInt, timeout: Duration, pending: PendingAcknowledgements, slot: AcknowledgementSlot
    ) {
        var msg: OpaquePointer?
        do {
            try message.makeNATSMessage(&msg)
            let strings = CStringArena()
            var options = try message.publishOptions(timeout: timeout, strings: strings)
            // Registered before the publish: the acknowledgement may come back before it returns.
            let key = UInt(bitPattern: msg)
            pending.register(slot, for: key)
            // The options point into `strings`: kept alive until libnats has read them.
            let status = withExtendedLifetime(strings) { js_PublishMsgAsync(OpaquePointer(bitPattern: address), &msg, &options) }
            if status != NATS_OK {
                pending.remove(key)
                throw NATSError(status, context: "publishing to \(message.subject)")
            }
        } catch {
            // libnats took no ownership of the message (it clears `msg` when it does).
            natsMsg_Destroy(msg)
            slot.resolve(.failure(error))
        }
    }
}

/// The asynchronous publishes of one JetStream context waiting for their acknowledgement, by the
/// address of their libnats message (what the acknowledgement handler is given back).
final class PendingAcknowledgements: Sendable {
    private let slots = Mutex<[UInt: AcknowledgementSlot]>([:])

    func register(_ slot: AcknowledgementSlot, for message: UInt) { slots.withLock { $0[message] = slot } }

    @discardableResult
    func remove(_ message: UInt) -> AcknowledgementSlot? { slots.withLock { $0.removeValue(forKey: message) } }

    var isEmpty: Bool { slots.withLock { $0.isEmpty } }
}

/// Where one publish's outcome lands: resolved once, from libnats' thread, and awaited once.
final class AcknowledgementSlot: Sendable {
    private struct State {
        var result: Result<PublishAck, any Error>?
        var waiter: CheckedContinuation<Result<PublishAck, any Error>, Never>?
    }

    private let state = Mutex(State())

    func resolve(_ result: Result<PublishAck, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<PublishAck, any Error>, Never>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    func result() async -> Result<PublishAck, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<PublishAck, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// libnats' acknowledgement handler for asynchronous publishes (a plain C function): resolves the
/// message's slot with the stream's acknowledgement, or with the error (a refusal, or no
/// acknowledgement within the publish's `MaxWait`), and destroys the message, which it owns.
func acknowledgementReceived(
    _ context: OpaquePointer?, _ message: OpaquePointer?, _ ack: UnsafeMutablePointer<jsPubAck>?,
    _ failure: UnsafeMutablePointer<jsPubAckErr>?, _ closure: UnsafeMutableRawPointer?
) {
    defer { natsMsg_Destroy(message) }
    guard let closure else { return }
    let pending = Unmanaged<PendingAcknowledgements>.fromOpaque(closure).takeUnretainedValue()
    guard let slot = pending.remove(UInt(bitPattern: message)) else { return }
    if let ack {
        slot.resolve(
            .success(
                PublishAck(stream: String(cString: ack.pointee.Stream), sequence: ack.pointee.Sequence, duplicate: ack.pointee.Duplicate)))
    } else {
        let status = failure?.pointee.Err ?? NATS_ERR
        let code = failure?.pointee.ErrCode ?? jsErrCode(0)
        let text = failure?.pointee.ErrText.map { String(cString: $0) } ?? "no acknowledgement"
        slot.resolve(.failure(NATSError(status, jetStreamCode: code, context: "publishing asynchronously: \(text)")))
    }
}
