import BatonCore
import BatonStore
import BatonTransport
import Foundation
import Logging
import Testing

@testable import BatonEngine

/// The dispatcher publishes commands right after their commit; the relay sweeps up what it missed.
/// Real PostgreSQL and a private nats-server.
@Suite("Command dispatch")
struct CommandDispatcherTests {
    static let logger = Logger(label: "baton.test.dispatch")

    @Test("a command goes out right after its commit, with no relay running, and its row is marked published")
    func publishesAfterCommit() async throws {
        try await Self.withSystem(streams: true) { store, jetStream in
            let dispatcher = CommandDispatcher(store: store, jetStreams: .fixed(jetStream), logger: Self.logger)
            let runner = SagaRunner(store: store, dispatcher: dispatcher)
            let running = Task { try await dispatcher.run() }
            defer { running.cancel() }

            let created = try await runner.submit(workflow: StoreFixture.definition.name, input: ["amount": 100])
            let command = try #require(created.record.queued.first?.command)
            let delivered = try await Self.nextCommand(jetStream)
            #expect(delivered.header(WireProtocol.Header.messageID) == command.messageID)
            try await Self.waitUntil("the row is marked published") { try await store.outboxBacklog().count == 0 }
        }
    }

    @Test("a command the dispatcher could not publish stays in the outbox, and the relay's sweep sends it")
    func relaySweepsWhatTheDispatcherMissed() async throws {
        // No commands stream yet: JetStream refuses every publish.
        try await Self.withSystem(streams: false) { store, jetStream in
            let dispatcher = CommandDispatcher(store: store, jetStreams: .fixed(jetStream), logger: Self.logger)
            let runner = SagaRunner(store: store, dispatcher: dispatcher)
            let created = try await runner.submit(workflow: StoreFixture.definition.name, input: ["amount": 100])
            let queued = try await dispatcherBatch(dispatcher)
            await dispatcher.dispatch(queued)
            #expect(try await store.outboxBacklog().count == 1)

            for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
            var relay = OutboxRelay(store: store, jetStreams: .fixed(jetStream), logger: Self.logger)
            // Inside the grace the relay leaves the row to the dispatcher; after it, the relay sends it.
            relay.grace = .seconds(60)
            #expect(try await relay.relayBatch().claimed == 0)
            relay.grace = .milliseconds(1)
            try await Task.sleep(for: .milliseconds(10))
            #expect(try await relay.relayBatch().claimed == 1)
            #expect(try await store.outboxBacklog().count == 0)
            let delivered = try await Self.nextCommand(jetStream)
            #expect(delivered.header(WireProtocol.Header.messageID) == created.record.queued.first?.command.messageID)
        }
    }

    @Test("beyond its limit the dispatcher takes no more: the outbox keeps them for the relay")
    func boundedWaiting() async throws {
        try await Self.withSystem(streams: true) { store, jetStream in
            let dispatcher = CommandDispatcher(store: store, jetStreams: .fixed(jetStream), maximumWaiting: 2, logger: Self.logger)
            let runner = SagaRunner(store: store, dispatcher: dispatcher)
            for _ in 0..<3 { _ = try await runner.submit(workflow: StoreFixture.definition.name, input: ["amount": 100]) }
            #expect(dispatcher.waitingCount == 2)
            #expect(try await store.outboxBacklog().count == 3)
        }
    }

    /// Takes what the dispatcher holds, as its run loop would.
    private func dispatcherBatch(_ dispatcher: CommandDispatcher) async throws -> [OutboxMessage] {
        #expect(dispatcher.waitingCount == 1)
        return dispatcher.takeWaiting()
    }

    static func withSystem(streams: Bool, _ body: (SagaStore, JetStream) async throws -> Void) async throws {
        let nats = try PrivateNATS()
        defer { nats.remove() }
        let jetStream = try JetStream(try await NATSConnection.connectWhenUp(.init(urlList: nats.url, name: "baton-dispatch-test")))
        if streams { for stream in BatonStreams.all { try await jetStream.ensureStream(stream) } }
        try await StoreFixture.withStore { store in
            try await body(store, jetStream)
        }
    }

    /// The next message on the commands stream, through a consumer of its own.
    static func nextCommand(_ jetStream: JetStream) async throws -> JetStreamMessage {
        try await jetStream.ensureConsumer(
            stream: BatonStreams.commands.name, ConsumerConfiguration(durable: "inspect", filterSubject: "baton.cmd.>"))
        let subscription = try await jetStream.pullSubscription(
            stream: BatonStreams.commands.name, consumer: "inspect", filterSubject: "baton.cmd.>")
        let messages = try await subscription.fetch(batch: 1, maxWait: .seconds(5))
        return try #require(messages.first, "no command reached the stream")
    }

    static func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<100 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting until \(what)")
    }
}
