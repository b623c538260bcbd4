import BatonTransport
import Foundation
import Testing

/// A NATS outage, with a nats-server of the test's own (the shared one must stay up for the others).
@Suite("NATS outages")
struct ReconnectTests {
    static func startServer(port: Int, arguments: [String] = []) throws -> Process {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["nats-server", "-a", "127.0.0.1", "-p", String(port)] + arguments
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        return server
    }

    /// Waits (up to `limit`) for the connection to reach `state`.
    static func wait(
        for state: NATSConnection.State, on connection: NATSConnection, limit: Duration = .seconds(15)
    ) async throws
        -> Bool
    {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            if connection.state == state { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return connection.state == state
    }

    @Test("the connection reports reconnecting while the server is down, and connected again when it returns")
    func outage() async throws {
        let port = try LoopbackPort.free()
        var server = try Self.startServer(port: port)
        defer { server.stop() }
        var options = NATSConnection.Options(urls: ["nats://127.0.0.1:\(port)"], name: "outage-test")
        options.reconnectInitialWait = .milliseconds(50)
        options.reconnectMaxWait = .milliseconds(200)
        let client = try await NATSConnection.connectWhenUp(options)
        #expect(client.state == .connected)

        server.stop()
        #expect(try await Self.wait(for: .reconnecting, on: client))

        server = try Self.startServer(port: port)
        #expect(try await Self.wait(for: .connected, on: client))
        try await client.flush()

        client.close()
        #expect(client.state == .closed)
    }

    @Test("user and password, or a token, are sent; without them the server refuses")
    func credentials() async throws {
        for (arguments, good, bad) in [
            (
                ["--user", "baton", "--pass", "s3cret"],
                { (options: inout NATSConnection.Options) in (options.user, options.password) = ("baton", "s3cret") },
                { (options: inout NATSConnection.Options) in (options.user, options.password) = ("baton", "wrong") }
            ),
            (
                ["--auth", "t0ken"],
                { (options: inout NATSConnection.Options) in options.token = "t0ken" },
                { (options: inout NATSConnection.Options) in options.token = "nope" }
            ),
        ] {
            let port = try LoopbackPort.free()
            let server = try Self.startServer(port: port, arguments: arguments)
            defer { server.terminate() }
            var options = NATSConnection.Options(urls: ["nats://127.0.0.1:\(port)"], name: "auth-test", maxReconnectAttempts: 0)
            good(&options)
            let connection = try? await NATSConnection.connectWhenUp(options)
            #expect(connection?.state == .connected, "\(arguments)")
            connection?.close()

            var refused = NATSConnection.Options(urls: ["nats://127.0.0.1:\(port)"], name: "auth-test", maxReconnectAttempts: 0)
            bad(&refused)
            await #expect(throws: NATSError.self) { try await NATSConnection.connect(refused) }
        }
    }
}
