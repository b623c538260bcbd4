extension Migration {
    /// Version 3: who asked (issue 14). Each history entry a request caused names its caller, and
    /// each workflow version who registered it. Nullable, no default: no row is rewritten, and
    /// what the engine does by itself (replies, timers) names nobody.
    static let actors = Migration(
        version: 3,
        name: "actors",
        statements: [
            "ALTER TABLE baton.saga_history ADD COLUMN actor text",
            "ALTER TABLE baton.workflow_definitions ADD COLUMN registered_by text",
        ]
    )
}
