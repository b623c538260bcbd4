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
        var last = NATS_OK
        if let detail = nats_GetLastError(&last), last == status {
            self.text = String(cString: detail)
        } else {
            self.text = String(cString: natsStatus_GetText(status))
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
