import CNATS

/// A call into libnats failed: its status, the JetStream error code when the server gave one, and
/// what Baton was doing.
public struct NATSError: Error, Sendable, CustomStringConvertible {
    /// libnats' `natsStatus` code.
    public var status: UInt32
    /// The JetStream API error code (`jsErrCode`), 0 when there is none.
    public var jetStreamCode: Int
    public var context: String
    public var text: String

    init(_ status: natsStatus, jetStreamCode: jsErrCode = jsErrCode(0), context: String) {
        self.status = status.rawValue
        self.jetStreamCode = Int(jetStreamCode.rawValue)
        self.context = context
        // The thread's last error carries the detail (the server's message); the status text is the fallback.
        // The last error can be empty (seen on publish failures): then only the status says why.
        var last = NATS_OK
        let statusText = String(cString: natsStatus_GetText(status))
        if let detail = nats_GetLastError(&last).map({ String(cString: $0) }), last == status, !detail.isEmpty {
            self.text = detail.contains(statusText) ? detail : "\(statusText): \(detail)"
        } else {
            self.text = statusText
        }
    }

    /// The request timed out (an empty fetch, a publish without an ack in time).
    public var isTimeout: Bool { status == NATS_TIMEOUT.rawValue }

    public var description: String {
        "\(context): \(text)" + (jetStreamCode == 0 ? "" : " (JetStream error \(jetStreamCode))")
    }

    /// Throws unless `status` is `NATS_OK`.
    static func check(_ status: natsStatus, jetStreamCode: jsErrCode = jsErrCode(0), _ context: @autoclosure () -> String) throws {
        guard status == NATS_OK else { throw NATSError(status, jetStreamCode: jetStreamCode, context: context()) }
    }
}
