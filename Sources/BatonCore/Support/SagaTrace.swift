import W3CTraceContext

/// The W3C trace context a saga carries (`traceparent`), from the request that started it to
/// every command, reply and log line of every step.
///
/// The orchestrator passes the context through: each command carries the saga's `traceparent` as
/// it came, so a participant's spans are children of the caller's span and the whole saga is one
/// trace, even though the orchestrator itself reports no spans. A request without a valid
/// `traceparent` starts a new trace, so that one `trace.id` still joins all the saga's logs.
public enum SagaTrace {
    /// The caller's `traceparent` when it is a valid version-00 header; otherwise a new sampled
    /// trace with a random trace id and parent id.
    public static func start(from callerHeader: String?) -> String {
        if let callerHeader, let context = try? TraceContext(traceParentHeaderValue: callerHeader) {
            return context.traceParentHeaderValue
        }
        return TraceContext(traceID: .random(), spanID: .random(), flags: .sampled, state: TraceState())
            .traceParentHeaderValue
    }

    /// The trace id and parent span id of a `traceparent` header, in hex, for log metadata; nil
    /// when the header is not valid.
    public static func ids(of header: String) -> (traceID: String, spanID: String)? {
        guard let context = try? TraceContext(traceParentHeaderValue: header) else { return nil }
        return ("\(context.traceID)", "\(context.spanID)")
    }
}
