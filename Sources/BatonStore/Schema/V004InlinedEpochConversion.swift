extension Migration {
    /// Version 4: `baton.from_epoch_us`, which every saga write calls a dozen times or more, as a
    /// function PostgreSQL inlines (issue 15).
    ///
    /// PostgreSQL inlines a SQL function into the query only when the body is no more volatile
    /// than the function is declared. Version 1's body added an interval to a `timestamptz`, which
    /// is only STABLE (it depends on the time zone), so each call ran as a function call of its
    /// own: a planner-free but still full executor start per value. Adding the interval to a
    /// `timestamp` and reading that as UTC is IMMUTABLE, and gives the same instant.
    static let inlinedEpochConversion = Migration(
        version: 4,
        name: "inlined epoch conversion",
        statements: [
            """
            CREATE OR REPLACE FUNCTION baton.from_epoch_us(us bigint) RETURNS timestamptz
                LANGUAGE sql IMMUTABLE PARALLEL SAFE
                RETURN timezone('UTC', 'epoch'::timestamp + us * interval '1 microsecond')
            """
        ]
    )
}
