extension Migration {
    /// Version 8: the order in which the steps of a parallel group completed (issue 16), which their
    /// compensation runs backwards. `NULL` for every step outside a group, so adding the column
    /// rewrites nothing.
    static let completionOrder = Migration(
        version: 8,
        name: "completion order",
        statements: ["ALTER TABLE baton.saga_steps ADD COLUMN completion_order int"]
    )
}
