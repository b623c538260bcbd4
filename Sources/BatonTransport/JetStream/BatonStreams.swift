/// The streams Baton needs, created idempotently by the orchestrator and by workers at start-up.
///
/// Commands and replies use work-queue retention: a message is removed once its consumer
/// acknowledges it, so the stream's size is the backlog, and nothing needs pruning. (Each
/// participant's worker consumer filters its own `baton.cmd.<participant>.>`, so the filters never
/// overlap, as work queues require.) The PostgreSQL outbox and history keep what was sent, for as
/// long as operators want it.
///
/// The duplicate window is two minutes: long enough to cover an outbox relay that dies after
/// publishing and before recording it (another relay republishes within seconds), short enough
/// that the server's memory of ids stays small under load. A duplicate arriving later still meets
/// the participant's idempotency barrier and the orchestrator's attempt fencing.
///
/// Dead letters use limits retention for 14 days: they are kept for people to inspect and replay,
/// whether or not anyone consumes them.
public enum BatonStreams {
    public static let commands = StreamConfiguration(
        name: "BATON_COMMANDS",
        description: "Commands from the Baton orchestrator to participants",
        subjects: ["baton.cmd.>"],
        retention: .workQueue,
        duplicateWindow: .seconds(120)
    )

    public static let replies = StreamConfiguration(
        name: "BATON_REPLIES",
        description: "Participants' replies to Baton commands",
        subjects: ["baton.reply.>"],
        retention: .workQueue,
        duplicateWindow: .seconds(120)
    )

    public static let deadLetters = StreamConfiguration(
        name: "BATON_DLQ",
        description: "Messages Baton could not process, with the reason",
        subjects: ["baton.dlq.>"],
        retention: .limits,
        duplicateWindow: .seconds(120),
        maxAge: .seconds(14 * 24 * 3600)
    )

    public static let all = [commands, replies, deadLetters]

    /// Every stream, each kept on `replicas` servers of a JetStream cluster (1, 3 or 5: a
    /// replicated stream survives the loss of a minority of its servers). The orchestrator creates
    /// them so (`BATON_NATS_STREAM_REPLICAS`); workers only create what is missing.
    public static func all(replicas: Int) -> [StreamConfiguration] {
        all.map { stream in
            var replicated = stream
            replicated.replicas = replicas
            return replicated
        }
    }

    /// The durable consumer of one participant's commands, shared by all its processes: named
    /// after the participant, filtered to `baton.cmd.<participant>.>`. The orchestrator creates it
    /// for every participant its workflows name, so a participant whose NATS user may not manage
    /// consumers (docs/operations.md, Security) only binds to it.
    public static func participantConsumer(_ participant: String, ackWait: Duration = .seconds(30)) -> ConsumerConfiguration {
        ConsumerConfiguration(durable: participant, filterSubject: "baton.cmd.\(participant).>", ackWait: ackWait)
    }

    /// The inbox prefix of a participant's connections: `_INBOX_<participant>`, so that its NATS
    /// user can be allowed its own inboxes only.
    public static func inboxPrefix(participant: String) -> String { "_INBOX_\(participant)" }

    /// The inbox prefix of the orchestrator's connections.
    public static let orchestratorInboxPrefix = "_INBOX_baton"
}
