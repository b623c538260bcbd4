import BatonCore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import Testing

/// The NATS permission model of `docs/examples/nats/permissions.conf`, on a nats-server of the
/// test's own started with it: the orchestrator commands and reads replies; a participant gets its
/// own commands and answers them, and nothing else.
@Suite("NATS permissions")
struct NATSPermissionsTests {
    /// The shipped example, with a `fraud` participant added beside `ledger`.
    static func configuration() throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(
            path: "../../../docs/examples/nats/permissions.conf")
        let example = try String(contentsOf: path, encoding: .utf8)
        let ledger = try #require(example.range(of: "    {\n      user: ledger")).lowerBound
        let end = try #require(example.range(of: "  ]\n}", options: .backwards)).lowerBound
        let block = String(example[ledger..<end]).trimmingCharacters(in: .newlines)
        let fraud = block.replacingOccurrences(of: "ledger", with: "fraud")
        return example.replacingOccurrences(of: block, with: block + ",\n" + fraud)
    }

    static func connect(_ url: String, user: String, password: String, inbox: String) async throws -> JetStream {
        var options = NATSConnection.Options(urlList: url, name: user)
        options.user = user
        options.password = password
        options.inboxPrefix = inbox
        return try JetStream(try await NATSConnection.connectWhenUp(options))
    }

    @Test("a participant consumes and answers its own commands only; it cannot command, nor answer for another")
    func participantsAreConfined() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "baton-nats-perm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appending(path: "nats.conf")
        try Self.configuration().write(to: config, atomically: true, encoding: .utf8)
        let port = try LoopbackPort.free()
        let server = try ReconnectTests.startServer(
            port: port, arguments: ["-c", config.path, "-js", "-sd", directory.appending(path: "js").path])
        defer { server.stop() }
        let url = "nats://127.0.0.1:\(port)"

        // The orchestrator makes the streams and each participant's consumer.
        let orchestrator = try await Self.connect(
            url, user: "baton", password: "change-me-baton", inbox: BatonStreams.orchestratorInboxPrefix)
        for stream in BatonStreams.all { try await orchestrator.ensureStream(stream) }
        for participant in ["ledger", "fraud"] {
            try await orchestrator.ensureConsumer(
                stream: BatonStreams.commands.name, BatonStreams.participantConsumer(participant), updateExisting: false)
        }
        let repliesConsumer = ConsumerConfiguration(durable: "baton-orchestrator", filterSubject: "baton.reply.>")
        try await orchestrator.ensureConsumer(stream: BatonStreams.replies.name, repliesConsumer)
        let replies = try await orchestrator.pullSubscription(
            stream: BatonStreams.replies.name, consumer: repliesConsumer.durable, filterSubject: "baton.reply.>")

        // The ledger's worker, under the ledger user, runs a command end to end.
        var handlers = WorkerHandlers()
        handlers.action("debit") { _ in ["entry_id": "e-1"] }
        var nats = NATSConnection.Options(urlList: url, name: "ledger-worker")
        nats.user = "ledger"
        nats.password = "change-me-ledger"
        let worker = Worker(
            configuration: .init(participant: "ledger", nats: nats), handlers: handlers, logger: Logger(label: "baton.test.permissions"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            let saga = "0190f5a4-7b1c-7d2e-8f00-000000000001"
            let command = CommandMessage(
                StepCommand(
                    sagaID: saga, step: "debit", participant: "ledger", action: "debit", direction: .action, attempt: 1,
                    idempotencyKey: StepCommand.idempotencyKey(sagaID: saga, step: "debit", direction: .action),
                    deadline: Date().addingTimeInterval(30), payload: ["amount": 5], correlationID: nil),
                workflow: "transfer")
            try await orchestrator.publish(command.outgoing)
            var answered: ReplyMessage?
            let end = ContinuousClock.now + .seconds(20)
            while answered == nil && ContinuousClock.now < end {
                for message in try await replies.fetch(batch: 10, maxWait: .milliseconds(500)) {
                    let reply = try ReplyMessage(subject: message.subject, headers: message.headers, payload: message.payload)
                    try message.ack()
                    if reply.status != .inProgress { answered = reply }
                }
            }
            #expect(answered?.status == .succeeded(output: ["entry_id": "e-1"]))
            #expect(answered?.participant == "ledger")
            group.cancelAll()
            try await group.waitForAll()
        }

        // What the ledger's user may not do.
        let ledger = try await Self.connect(
            url, user: "ledger", password: "change-me-ledger", inbox: BatonStreams.inboxPrefix(participant: "ledger"))
        let forgedCommand = OutgoingMessage(
            subject: "baton.cmd.ledger.credit", headers: [("Baton-Protocol", "1")], payload: Data("{}".utf8), messageID: "forged-1")
        await #expect(throws: NATSError.self, "a participant publishing a command") {
            try await ledger.publish(forgedCommand, timeout: .seconds(2))
        }
        let forgedReply = OutgoingMessage(
            subject: "baton.reply.fraud.check", headers: [("Baton-Protocol", "1")], payload: Data("{}".utf8), messageID: "forged-2")
        await #expect(throws: NATSError.self, "a participant answering for another") {
            try await ledger.publish(forgedReply, timeout: .seconds(2))
        }
        // Another participant's commands: there is one waiting, and the ledger gets nothing of it.
        let fraudCommand = OutgoingMessage(
            subject: "baton.cmd.fraud.check", headers: [("Baton-Protocol", "1")], payload: Data("{}".utf8), messageID: "fraud-1")
        try await orchestrator.publish(fraudCommand)
        let stolen = try? await ledger.pullSubscription(
            stream: BatonStreams.commands.name, consumer: "fraud", filterSubject: "baton.cmd.fraud.>"
        ).fetch(batch: 1, maxWait: .seconds(1))
        #expect(stolen?.isEmpty ?? true, "a participant fetching another's commands")
        await #expect(throws: NATSError.self, "a participant making a consumer of every command") {
            try await ledger.ensureConsumer(
                stream: BatonStreams.commands.name, ConsumerConfiguration(durable: "spy", filterSubject: "baton.cmd.>"))
        }
        // Its own reply subject is open to it.
        let own = OutgoingMessage(
            subject: "baton.reply.ledger.debit", headers: [("Baton-Protocol", "1")], payload: Data("{}".utf8), messageID: "own-1")
        try await ledger.publish(own, timeout: .seconds(5))
    }
}
