extension Migration {
    /// Version 5: the outbox keeps the command and nothing derived from it (issue 15).
    ///
    /// Version 1 stored each command's subject and JetStream message id beside it, but no reader
    /// ever used them: the dispatcher and the relay build the whole message (subject, headers,
    /// `Nats-Msg-Id`, body) from the command, through the one definition of each in
    /// ``BatonCore/StepCommand``. Two copies could only drift, and they cost two text values on
    /// every command written. An operator asking which participant a backlog waits for reads
    /// `command->>'participant'` (docs/storage.md).
    static let leanOutbox = Migration(
        version: 5,
        name: "lean outbox",
        statements: [
            "ALTER TABLE baton.outbox DROP COLUMN subject, DROP COLUMN message_id"
        ]
    )
}
