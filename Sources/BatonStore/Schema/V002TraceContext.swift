extension Migration {
    /// Version 2: each saga keeps the W3C `traceparent` its commands carry (issue 7).
    ///
    /// Nullable and without a default, so adding it rewrites no row: sagas started before it run
    /// on without a trace context.
    static let traceContext = Migration(
        version: 2,
        name: "trace context",
        statements: ["ALTER TABLE baton.sagas ADD COLUMN traceparent text"]
    )
}
