extension Migration {
    /// Version 6: `CANCELLED`, the end of a saga cancelled on request and compensated, and the
    /// cancel itself on the saga's row (why, who asked, when), so that `get` and `list` show it
    /// without reading the history (issue 16).
    ///
    /// The status check is replaced `NOT VALID` and validated in a second statement, which takes
    /// only a light lock while it reads the existing rows.
    static let cancellation = Migration(
        version: 6,
        name: "cancellation",
        statements: [
            """
            ALTER TABLE baton.sagas
                ADD COLUMN cancel_reason text,
                ADD COLUMN cancelled_by text,
                ADD COLUMN cancelled_at timestamptz,
                DROP CONSTRAINT sagas_status_check,
                ADD CONSTRAINT sagas_status_check CHECK (status IN
                    ('PENDING', 'PROCESSING', 'COMPENSATING', 'SUSPENDED', 'COMPLETED', 'FAILED', 'CANCELLED')) NOT VALID
            """,
            "ALTER TABLE baton.sagas VALIDATE CONSTRAINT sagas_status_check",
        ]
    )
}
