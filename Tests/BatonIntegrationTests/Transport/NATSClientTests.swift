import BatonCore
import BatonTransport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The NATS client run as a service: one connection for the process, replaced when libnats closes it
/// for good, and closed only after the services that use it have drained. A private nats-server.
@Suite("NATS client service")
struct NATSClientTests {
    static let logger = Logger(label: "baton.test.nats-client")

    static let stream = StreamConfiguration(
        name: "CLIENT_TEST", description: "test", subjects: ["clienttest.>"], retention: .limits, duplicateWindow: .seconds(60))

    @Test("callers wait for the connection; one closed for good is replaced, and callers that ask again get the new one")
    func replacesAClosedConnection() async throws {
        let nats = try PrivateNATS()
        defer { nats.remove() }
        let client = NATSClient(
            options: .init(urlList: nats.url, name: "client-test"), logger: Self.logger, supervisionInterval: .milliseconds(50))
        // Asked before the client runs: the caller waits rather than failing.
        async let early = client.connection()
        let running = Task { try await client.run() }
        defer { running.cancel() }
        let first = try await early
        #expect(try await ReconnectTests.wait(for: .connected, on: first))

        first.close()
        var second = try await client.connection()
        for _ in 0..<100 where second === first {
            try await Task.sleep(for: .milliseconds(20))
            second = try await client.connection()
        }
        #expect(second !== first, "the closed connection was not replaced")
        #expect(try await ReconnectTests.wait(for: .connected, on: second))
        try await JetStream(second).ensureStream(Self.stream)

        running.cancel()
        _ = await running.result
        #expect(second.state == .closed)
        await #expect(throws: NATSClientStopped.self) { try await client.connection() }
    }

    @Test("in a service group the client closes after the services placed after it have drained: their last publish goes out")
    func orderedShutdown() async throws {
        let nats = try PrivateNATS()
        defer { nats.remove() }
        let client = NATSClient(options: .init(urlList: nats.url, name: "client-test"), logger: Self.logger)
        let user = DrainingPublisher(client: client)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: client), .init(service: user)], logger: Self.logger))
        let running = Task { try await group.run() }
        await user.started.wait()
        await group.triggerGracefulShutdown()
        try await running.value

        #expect(user.drained.withLock { $0 }, "the service's publish during its drain failed")
        #expect(user.connection.withLock { $0 }?.state == .closed, "the client left its connection open")
        let inspector = try await NATSConnection.connectWhenUp(.init(urlList: nats.url, name: "inspector"))
        defer { inspector.close() }
        let jetStream = try JetStream(inspector)
        try await jetStream.ensureConsumer(
            stream: Self.stream.name, ConsumerConfiguration(durable: "inspect", filterSubject: "clienttest.>"))
        let subscription = try await jetStream.pullSubscription(
            stream: Self.stream.name, consumer: "inspect", filterSubject: "clienttest.>")
        let messages = try await subscription.fetch(batch: 5, maxWait: .seconds(2))
        #expect(messages.map { String(decoding: $0.payload, as: UTF8.self) } == ["bye"])
    }
}

/// A service that, on graceful shutdown, publishes one last message through the client: it only
/// goes out if the client's connection is still open then.
private final class DrainingPublisher: Service, Sendable {
    let client: NATSClient
    let started = Doorbell()
    let drained = Mutex(false)
    let connection = Mutex<NATSConnection?>(nil)

    init(client: NATSClient) { self.client = client }

    func run() async throws {
        let connection = try await client.connection()
        self.connection.withLock { $0 = connection }
        let jetStream = try JetStream(connection)
        try await jetStream.ensureStream(NATSClientTests.stream)
        started.ring()
        try? await gracefulShutdown()
        _ = try await jetStream.publish(OutgoingMessage(subject: "clienttest.last", headers: [], payload: Data("bye".utf8)))
        drained.withLock { $0 = true }
    }
}
