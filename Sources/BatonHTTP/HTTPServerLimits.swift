import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// How long and how large an HTTP request may be before the server gives up on it: a client that
/// opens connections and sends nothing, or trickles its headers or body a byte at a time, would
/// otherwise hold a connection (and its memory) for ever.
public struct HTTPServerLimits: Sendable {
    /// A connection with no request in progress and nothing read for this long is closed; this
    /// also bounds the time to send a request's headers.
    public var idleTimeout: Duration
    /// A request's body must arrive in full within this long after its headers.
    public var bodyTimeout: Duration
    /// All header fields of a request together, in bytes.
    public var maximumHeaderBytes: Int
    /// Header fields in one request.
    public var maximumHeaderCount: Int

    public init(
        idleTimeout: Duration = .seconds(30), bodyTimeout: Duration = .seconds(30), maximumHeaderBytes: Int = 32 * 1024,
        maximumHeaderCount: Int = 100
    ) {
        self.idleTimeout = idleTimeout
        self.bodyTimeout = bodyTimeout
        self.maximumHeaderBytes = maximumHeaderBytes
        self.maximumHeaderCount = maximumHeaderCount
    }

    /// The HTTP/1.1 server with these limits, for `Application(server:)`.
    public var server: HTTPServerBuilder {
        let bodyTimeout = TimeAmount(bodyTimeout)
        return .http1(
            configuration: .init(
                additionalChannelHandlers: [RequestBodyDeadlineHandler(timeout: bodyTimeout)],
                idleTimeout: TimeAmount(idleTimeout),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: maximumHeaderBytes, maxHeaderListSize: maximumHeaderBytes, maxHeaderFieldCount: maximumHeaderCount)
            ))
    }
}

/// Closes a connection whose request body has not arrived in full within `timeout` of its headers.
/// The server's idle timeout does not catch a body trickled a byte at a time: each byte counts as
/// activity.
final class RequestBodyDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }
}
