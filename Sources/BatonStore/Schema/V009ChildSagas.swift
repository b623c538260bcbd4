extension Migration {
    /// Version 9: the parent of a child saga (issue 16): the saga and step that started it, and how
    /// deeply it is nested. `NULL` for every saga started from outside, so adding the columns
    /// rewrites nothing; the partial index finds a saga's children without indexing the others.
    static let childSagas = Migration(
        version: 9,
        name: "child sagas",
        statements: [
            "ALTER TABLE baton.sagas ADD COLUMN parent_saga_id uuid, ADD COLUMN parent_step text, ADD COLUMN parent_depth int",
            "CREATE INDEX sagas_parent ON baton.sagas (parent_saga_id) WHERE parent_saga_id IS NOT NULL",
        ]
    )
}
