import Foundation
import Testing

@testable import BatonTransport

/// The transport against the real nats-server `scripts/test` starts. Each test uses a stream and
/// subjects of its own, since all tests share the server.
@Suite("JetStream transport")
struct JetStreamTests {
    struct Fixture {
        let connection: NATSConnection
        let jetStream: JetStream
        let stream: String
        let subjects: String

        static func make() async throws -> Fixture {
            let connection = try await NATSConnection.connect(.init(urlList: try TestServers.natsURL, name: "baton-test"))
            let jetStream = try JetStream(connection)
            let tag = UUID().uuidString.prefix(8).lowercased()
            let fixture = Fixture(connection: connection, jetStream: jetStream, stream: "TEST_\(tag)", subjects: "test\(tag)")
            try await jetStream.ensureStream(fixture.streamConfiguration)
            return fixture
        }

        var streamConfiguration: StreamConfiguration {
            StreamConfiguration(
                name: stream, description: "test", subjects: ["\(subjects).>"], retention: .workQueue, duplicateWindow: .seconds(60))
        }

        func consumer(ackWait: Duration = .seconds(30)) async throws -> PullSubscription {
            try await jetStream.ensureConsumer(
                stream: stream, ConsumerConfiguration(durable: "workers", filterSubject: "\(subjects).>", ackWait: ackWait))
            return try await jetStream.pullSubscription(stream: stream, consumer: "workers", filterSubject: "\(subjects).>")
        }

        @discardableResult
        func publish(_ index: Int, id: String? = nil) async throws -> PublishAck {
            try await jetStream.publish(
                OutgoingMessage(
                    subject: "\(subjects).work", headers: [("Baton-Step", "step-\(index)")], payload: Data("payload \(index)".utf8),
                    messageID: id))
        }
    }

    @Test("a stream's newest messages are read back by sequence, newest first; a consumer's counts are reported")
    func inspection() async throws {
        let fixture = try await Fixture.make()
        #expect(try await fixture.jetStream.newestMessages(stream: fixture.stream, limit: 5).isEmpty)
        for index in 1...3 { try await fixture.publish(index) }
        let newest = try await fixture.jetStream.newestMessages(stream: fixture.stream, limit: 2)
        #expect(newest.map { String(decoding: $0.payload, as: UTF8.self) } == ["payload 3", "payload 2"])
        #expect(newest.first?.headers["Baton-Step"] == ["step-3"])
        #expect(newest.first.map { abs($0.storedAt.timeIntervalSinceNow) < 60 } == true)
        #expect(try await fixture.jetStream.streamCounts(fixture.stream)?.messages == 3)
        #expect(try await fixture.jetStream.streamCounts("NO_SUCH_STREAM") == nil)

        #expect(try await fixture.jetStream.consumerState(stream: fixture.stream, durable: "workers") == nil)
        let subscription = try await fixture.consumer()
        let waiting = try #require(try await fixture.jetStream.consumerState(stream: fixture.stream, durable: "workers"))
        #expect(waiting.pending == 3 && waiting.unacknowledged == 0 && waiting.lastDelivery == nil)
        let fetched = try await subscription.fetch(batch: 2, maxWait: .seconds(2))
        #expect(fetched.count == 2)
        let delivered = try #require(try await fixture.jetStream.consumerState(stream: fixture.stream, durable: "workers"))
        #expect(delivered.pending == 1 && delivered.unacknowledged == 2 && delivered.lastDelivery != nil)
    }

    @Test("connection state is reported, and a closed connection says so")
    func connectionState() async throws {
        let connection = try await NATSConnection.connect(.init(urlList: try TestServers.natsURL, name: "baton-test"))
        #expect(connection.state == .connected)
        try await connection.flush()
        connection.close()
        #expect(connection.state == .closed)
        await #expect(throws: NATSError.self) {
            try await NATSConnection.connect(
                .init(urls: ["nats://127.0.0.1:1"], name: "nowhere", connectTimeout: .milliseconds(500)))
        }
    }

    @Test("streams and consumers are created idempotently")
    func idempotentSetup() async throws {
        let fixture = try await Fixture.make()
        try await fixture.jetStream.ensureStream(fixture.streamConfiguration)
        var changed = fixture.streamConfiguration
        changed.duplicateWindow = .seconds(30)
        try await fixture.jetStream.ensureStream(changed)
        _ = try await fixture.consumer()
        _ = try await fixture.consumer(ackWait: .seconds(10))
    }

    @Test("several processes creating the same stream and consumer at once all succeed; a real overlap is still an error")
    func concurrentSetup() async throws {
        // On a fresh server, as when every process of a deployment starts at once.
        for _ in 0..<5 {
            let nats = try PrivateNATS()
            defer { nats.remove() }
            var connections: [JetStream] = []
            for index in 0..<6 {
                connections.append(try JetStream(try await NATSConnection.connectWhenUp(.init(urlList: nats.url, name: "racer-\(index)"))))
            }
            let consumer = ConsumerConfiguration(durable: "baton-orchestrator", filterSubject: "baton.reply.>")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for jetStream in connections {
                    group.addTask {
                        for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
                        try await jetStream.ensureConsumer(stream: BatonStreams.replies.name, consumer)
                    }
                }
                try await group.waitForAll()
            }
            var other = BatonStreams.commands
            other.name = "OVERLAPPING"
            await #expect(throws: NATSError.self) { try await connections[0].ensureStream(other) }
        }
    }

    @Test("a message round-trips with its headers, payload and delivery metadata, and an ack removes it")
    func roundTrip() async throws {
        let fixture = try await Fixture.make()
        let ack = try await fixture.jetStream.publish(
            OutgoingMessage(
                subject: "\(fixture.subjects).ledger.debit",
                headers: [
                    ("Baton-Saga-Id", "0190f5a4-7b1c-7d2e-8f00-000000000000"), ("Baton-Attempt", "2"), ("X-Many", "a"), ("X-Many", "b"),
                ],
                payload: Data(#"{"amount":100}"#.utf8), messageID: "saga.debit.action.2"))
        #expect(ack.stream == fixture.stream)
        #expect(!ack.duplicate)

        let subscription = try await fixture.consumer()
        let messages = try await subscription.fetch(batch: 10, maxWait: .seconds(2))
        #expect(messages.count == 1)
        let message = try #require(messages.first)
        #expect(message.subject == "\(fixture.subjects).ledger.debit")
        #expect(message.header("Baton-Saga-Id") == "0190f5a4-7b1c-7d2e-8f00-000000000000")
        #expect(message.header("Baton-Attempt") == "2")
        #expect(message.headers["X-Many"] == ["a", "b"])
        #expect(message.header("Nats-Msg-Id") == "saga.debit.action.2")
        #expect(String(decoding: message.payload, as: UTF8.self) == #"{"amount":100}"#)
        #expect(message.metadata?.deliveryCount == 1)
        #expect(message.metadata?.streamSequence == ack.sequence)
        #expect(message.metadata?.stream == fixture.stream)
        #expect(message.metadata?.consumer == "workers")
        try message.ack()
        try await fixture.connection.flush()
        #expect(try await subscription.fetch(batch: 10, maxWait: .milliseconds(300)).isEmpty)
    }

    @Test("a second publish with the same Nats-Msg-Id is dropped by the stream")
    func duplicatePublish() async throws {
        let fixture = try await Fixture.make()
        let first = try await fixture.publish(1, id: "same-id")
        let second = try await fixture.publish(1, id: "same-id")
        #expect(!first.duplicate)
        #expect(second.duplicate)
        #expect(second.sequence == first.sequence)
        let subscription = try await fixture.consumer()
        let messages = try await subscription.fetch(batch: 10, maxWait: .seconds(1))
        #expect(messages.count == 1)
    }

    @Test("a message whose worker died before acking is delivered again")
    func redeliveryAfterWorkerDeath() async throws {
        let fixture = try await Fixture.make()
        try await fixture.publish(1)
        // A worker takes the message and dies (its connection closes) without acking.
        let first = try await fixture.consumer(ackWait: .seconds(1))
        let taken = try await first.fetch(batch: 1, maxWait: .seconds(2))
        #expect(taken.first?.metadata?.deliveryCount == 1)
        fixture.connection.close()

        let survivor = try await Fixture.reconnect(fixture)
        var redelivered: [JetStreamMessage] = []
        for _ in 0..<5 where redelivered.isEmpty {
            redelivered = try await survivor.fetch(batch: 1, maxWait: .seconds(1))
        }
        #expect(redelivered.first?.header("Baton-Step") == "step-1")
        #expect(redelivered.first?.metadata?.deliveryCount == 2)
        try redelivered.first?.ack()
    }

    @Test("nak with a delay redelivers later; term never redelivers")
    func nakAndTerm() async throws {
        let fixture = try await Fixture.make()
        try await fixture.publish(1)
        try await fixture.publish(2)
        let subscription = try await fixture.consumer()
        let both = try await subscription.fetch(batch: 2, maxWait: .seconds(2))
        #expect(both.count == 2)
        try both[0].nak(delay: .milliseconds(300))
        try both[1].term()
        try await fixture.connection.flush()

        var again: [JetStreamMessage] = []
        for _ in 0..<5 where again.isEmpty { again = try await subscription.fetch(batch: 2, maxWait: .seconds(1)) }
        #expect(again.map { $0.header("Baton-Step") } == ["step-1"])
        #expect(again.first?.metadata?.deliveryCount == 2)
        try again.first?.ack()
        try await fixture.connection.flush()
        #expect(try await subscription.fetch(batch: 2, maxWait: .milliseconds(500)).isEmpty)
    }

    @Test("a batch is published at once: one result per message in order, an ack each, a refusal for a subject no stream takes")
    func batchPublish() async throws {
        let fixture = try await Fixture.make()
        var messages = (0..<50).map {
            OutgoingMessage(
                subject: "\(fixture.subjects).work", headers: [("Baton-Step", "step-\($0)")], payload: Data("payload \($0)".utf8),
                messageID: "batch-\($0)")
        }
        // The same message id again: stored once, acknowledged as a duplicate.
        messages.append(messages[0])
        // A subject no stream takes: refused, alone.
        messages.insert(OutgoingMessage(subject: "nowhere.\(fixture.stream)", payload: Data("lost".utf8), messageID: "lost"), at: 10)
        let results = await fixture.jetStream.publish(batch: messages, timeout: .seconds(2))
        #expect(results.count == messages.count)
        let acks = results.enumerated().filter { $0.offset != 10 }.map { try? $0.element.get() }
        #expect(acks.allSatisfy { $0?.stream == fixture.stream })
        #expect(Set(acks.compactMap { $0?.sequence }).count == 50)
        #expect(acks.last??.duplicate == true)
        #expect(throws: (any Error).self) { try results[10].get() }
        // The ack handler gave every slot back.
        #expect(fixture.jetStream.pending.isEmpty)
    }

    @Test("the message sequence yields until its task is cancelled; two pullers share one consumer")
    func sharedConsumer() async throws {
        let fixture = try await Fixture.make()
        for index in 0..<20 { try await fixture.publish(index) }
        let first = try await fixture.consumer()
        let second = try await Fixture.reconnect(fixture)
        let taken = Collector<String>()
        let seen = try await withThrowingTaskGroup(of: [String].self) { group in
            for subscription in [first, second] {
                group.addTask {
                    var steps: [String] = []
                    for try await message in subscription.messages(batch: 1, maxWait: .milliseconds(300)) {
                        steps.append(message.header("Baton-Step") ?? "")
                        await taken.append(contentsOf: [steps.last ?? ""])
                        try message.ack()
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    return steps
                }
            }
            // Both pull until the stream is drained (however slow a loaded machine makes that),
            // then keep polling an empty stream until they are cancelled.
            let deadline = ContinuousClock.now + .seconds(30)
            while await taken.values.count < 20, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .milliseconds(500))
            group.cancelAll()
            return try await group.reduce(into: [[String]]()) { $0.append($1) }
        }
        #expect(seen.flatMap { $0 }.count == 20)
        #expect(Set(seen.flatMap { $0 }).count == 20)
        #expect(seen.allSatisfy { !$0.isEmpty }, "each puller took a share: \(seen.map(\.count))")
    }
}

extension JetStreamTests.Fixture {
    /// A second process's view: a new connection bound to the same durable consumer.
    static func reconnect(_ fixture: JetStreamTests.Fixture) async throws -> PullSubscription {
        let connection = try await NATSConnection.connect(.init(urlList: try TestServers.natsURL, name: "baton-test-2"))
        return try await JetStream(connection).pullSubscription(
            stream: fixture.stream, consumer: "workers", filterSubject: "\(fixture.subjects).>")
    }
}
