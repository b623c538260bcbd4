extension Migration {
    /// Version 7: the signals a saga received (issue 16), consumed or kept until their signal step
    /// waits. On the saga's row, as the state machine reads them with the rest of the saga; `NULL`
    /// for the sagas that never received one, so adding the column rewrites nothing.
    static let signals = Migration(
        version: 7,
        name: "signals",
        statements: ["ALTER TABLE baton.sagas ADD COLUMN signals jsonb"]
    )
}
