import BatonCore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The worker SDK against the real nats-server: commands in, typed replies out, poison to the dead
/// letters. The test plays the orchestrator: it publishes commands and reads the replies.
@Suite("Worker SDK")
struct WorkerTests {
    static let logger = Logger(label: "baton.test.worker")

    /// The orchestrator's side of one test: a participant name of its own, and consumers of its
    /// replies and dead letters.
    struct Orchestrator {
        let participant: String
        let jetStream: JetStream
        let replies: PullSubscription
        let deadLetters: PullSubscription

        static func make() async throws -> Orchestrator {
            let participant = "p-" + UUID().uuidString.prefix(8).lowercased()
            let connection = try await NATSConnection.connect(.init(urlList: try TestServers.natsURL, name: "test-orchestrator"))
            let jetStream = try JetStream(connection)
            for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
            let replies = ConsumerConfiguration(durable: "replies-\(participant)", filterSubject: "baton.reply.\(participant).>")
            try await jetStream.ensureConsumer(stream: BatonStreams.replies.name, replies)
            let letters = ConsumerConfiguration(durable: "dlq-\(participant)", filterSubject: "baton.dlq.cmd.\(participant).>")
            try await jetStream.ensureConsumer(stream: BatonStreams.deadLetters.name, letters)
            return Orchestrator(
                participant: participant, jetStream: jetStream,
                replies: try await jetStream.pullSubscription(
                    stream: BatonStreams.replies.name, consumer: replies.durable, filterSubject: replies.filterSubject!),
                deadLetters: try await jetStream.pullSubscription(
                    stream: BatonStreams.deadLetters.name, consumer: letters.durable, filterSubject: letters.filterSubject!))
        }

        func command(
            _ action: String, step: String = "s", attempt: Int = 1, deadline: Duration = .seconds(30), payload: JSONValue = [:]
        )
            -> CommandMessage
        {
            let saga = "0190f5a4-7b1c-7d2e-8f00-" + String(format: "%012d", Int.random(in: 0..<1_000_000_000))
            return CommandMessage(
                StepCommand(
                    sagaID: saga, step: step, participant: participant, action: action, direction: .action, attempt: attempt,
                    idempotencyKey: StepCommand.idempotencyKey(sagaID: saga, step: step, direction: .action),
                    deadline: Date().addingTimeInterval(Double(deadline.components.seconds)), payload: payload,
                    correlationID: "corr-\(step)"),
                workflow: "test")
        }

        /// Replies until `count` non-heartbeat ones came (or 20 s passed).
        func replies(_ count: Int) async throws -> [ReplyMessage] {
            var replies: [ReplyMessage] = []
            let end = ContinuousClock.now + .seconds(20)
            while replies.filter({ $0.status != .inProgress }).count < count && ContinuousClock.now < end {
                for message in try await self.replies.fetch(batch: 50, maxWait: .milliseconds(500)) {
                    replies.append(try ReplyMessage(subject: message.subject, headers: message.headers, payload: message.payload))
                    try message.ack()
                }
            }
            return replies
        }

        func deadLetters(_ count: Int) async throws -> [JetStreamMessage] {
            var letters: [JetStreamMessage] = []
            let end = ContinuousClock.now + .seconds(20)
            while letters.count < count && ContinuousClock.now < end {
                letters += try await deadLetters.fetch(batch: 10, maxWait: .milliseconds(500))
            }
            return letters
        }
    }

    /// Runs one worker per set of handlers for `body`, then stops them.
    static func withWorkers(
        _ orchestrator: Orchestrator,
        _ handlers: [WorkerHandlers],
        ackWait: Duration = .seconds(30),
        _ body: () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, handlers) in handlers.enumerated() {
                let worker = Worker(
                    configuration: .init(
                        participant: orchestrator.participant, nats: .init(urlList: try TestServers.natsURL, name: "worker-\(index)"),
                        ackWait: ackWait),
                    handlers: handlers, logger: logger)
                group.addTask { try await worker.run() }
            }
            try await body()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    @Test("a command is answered with its handler's output; business failures and other errors map to failed and retry")
    func replies() async throws {
        let orchestrator = try await Orchestrator.make()
        var handlers = WorkerHandlers()
        handlers.action("echo") { context in
            [
                "got": context.payload, "key": .string(context.idempotencyKey),
                "logged": .string(
                    "\(context.logger[metadataKey: "saga.id"] ?? "-") \(context.logger[metadataKey: "correlation.id"] ?? "-")"),
            ]
        }
        handlers.action("decline") { _ in throw BusinessFailure(code: "insufficient_funds", message: "balance too low") }
        handlers.action("busy") { _ in throw RetryLater(after: .seconds(2), message: "try later") }
        handlers.action("crash") { _ in throw CocoaError(.fileNoSuchFile) }
        try await Self.withWorkers(orchestrator, [handlers]) {
            let echo = orchestrator.command("echo", step: "a", payload: ["amount": 5])
            for command in [
                echo, orchestrator.command("decline", step: "b"), orchestrator.command("busy", step: "c"),
                orchestrator.command("crash", step: "d"),
            ] {
                try await orchestrator.jetStream.publish(command.outgoing)
            }
            let replies = Dictionary(uniqueKeysWithValues: try await orchestrator.replies(4).map { ($0.step, $0) })
            #expect(
                replies["a"]?.status
                    == .succeeded(
                        output: [
                            "got": ["amount": 5], "key": .string(echo.idempotencyKey), "logged": .string("\(echo.sagaID) corr-a"),
                        ]))
            #expect(replies["a"]?.sagaID == echo.sagaID)
            #expect(replies["a"]?.attempt == 1)
            #expect(replies["a"]?.correlationID == "corr-a")
            #expect(replies["b"]?.status == .failed(code: "insufficient_funds", message: "balance too low"))
            #expect(replies["c"]?.status == .retry(after: .seconds(2), message: "try later"))
            guard case .retry(nil, _)? = replies["d"]?.status else {
                Issue.record("an unexpected error is a retry, got \(String(describing: replies["d"]?.status))")
                return
            }
        }
    }

    @Test("poison commands go to the dead letters with the reason while good ones keep flowing")
    func poison() async throws {
        let orchestrator = try await Orchestrator.make()
        var handlers = WorkerHandlers()
        handlers.action("echo") { context in context.payload }
        try await Self.withWorkers(orchestrator, [handlers]) {
            var missingHeader = orchestrator.command("echo", step: "broken").outgoing
            missingHeader.headers.removeAll { $0.name == "Baton-Attempt" }
            try await orchestrator.jetStream.publish(missingHeader)
            var notJSON = orchestrator.command("echo", step: "garbled").outgoing
            notJSON.payload = Data("{oops".utf8)
            try await orchestrator.jetStream.publish(notJSON)
            try await orchestrator.jetStream.publish(orchestrator.command("transmogrify", step: "unknown").outgoing)
            try await orchestrator.jetStream.publish(orchestrator.command("echo", step: "good", payload: [1, 2]).outgoing)

            let replies = try await orchestrator.replies(1)
            #expect(replies.map(\.step) == ["good"])
            #expect(replies.first?.status == .succeeded(output: [1, 2]))
            let letters = try await orchestrator.deadLetters(3)
            let reasons = Dictionary(
                uniqueKeysWithValues: letters.map { ($0.header("Baton-Step") ?? "", $0.header("Baton-Dead-Letter-Reason") ?? "") })
            #expect(reasons["broken"] == "header Baton-Attempt is missing")
            #expect(reasons["garbled"]?.hasPrefix("the body is not strict JSON") == true)
            #expect(reasons["unknown"]?.contains("no action handler for 'transmogrify'") == true)
            #expect(letters.allSatisfy { $0.header("Baton-Dead-Letter-Source") == "worker:\(orchestrator.participant)" })
            #expect(letters.first { $0.header("Baton-Step") == "garbled" }?.payload == Data("{oops".utf8))
        }
    }

    @Test("two worker processes of one participant split the commands")
    func sharedLoad() async throws {
        let orchestrator = try await Orchestrator.make()
        let commands = 24
        let workers = (0..<2).map { index in
            var handlers = WorkerHandlers()
            handlers.action("work") { _ in
                try await Task.sleep(for: .milliseconds(20))
                return .integer(Int64(index))
            }
            return handlers
        }
        try await Self.withWorkers(orchestrator, workers) {
            for index in 0..<commands {
                try await orchestrator.jetStream.publish(orchestrator.command("work", step: "s\(index)").outgoing)
            }
            let replies = try await orchestrator.replies(commands)
            #expect(Set(replies.map(\.step)).count == commands)
            let byWorker = Dictionary(grouping: replies, by: { $0.status })
            #expect(byWorker.keys.count == 2, "both workers took a share: \(byWorker.mapValues(\.count))")
        }
    }

    @Test("a long handler sends in_progress before the deadline, then its result")
    func heartbeats() async throws {
        let orchestrator = try await Orchestrator.make()
        var handlers = WorkerHandlers()
        handlers.action("slow") { _ in
            try await Task.sleep(for: .milliseconds(1500))
            return "done"
        }
        try await Self.withWorkers(orchestrator, [handlers], ackWait: .seconds(1)) {
            try await orchestrator.jetStream.publish(orchestrator.command("slow", deadline: .seconds(1)).outgoing)
            let replies = try await orchestrator.replies(1)
            #expect(replies.contains { $0.status == .inProgress })
            #expect(replies.last?.status == .succeeded(output: "done"))
        }
    }

    @Test("on graceful shutdown a worker finishes the command in hand, answers it, and stops")
    func gracefulShutdown() async throws {
        let orchestrator = try await Orchestrator.make()
        let (started, signal) = AsyncStream<Void>.makeStream()
        var handlers = WorkerHandlers()
        handlers.action("slow") { _ in
            signal.yield()
            try await Task.sleep(for: .milliseconds(500))
            return "finished"
        }
        let worker = Worker(
            configuration: .init(participant: orchestrator.participant, nats: .init(urlList: try TestServers.natsURL, name: "graceful")),
            handlers: handlers, logger: Self.logger)
        let group = ServiceGroup(services: [worker], logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await orchestrator.jetStream.publish(orchestrator.command("slow").outgoing)
            for await _ in started { break }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let replies = try await orchestrator.replies(1)
        #expect(replies.last?.status == .succeeded(output: "finished"))
    }
}
