import BatonHTTP
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP server's own limits, against a live server on loopback and plain sockets (a client
/// library would hide exactly what is tested: partial headers, trickled bodies, writing first).
@Suite("HTTP server limits")
struct HTTPServerLimitsTests {
    static func withServer(_ body: @Sendable (Int) async throws -> Void) async throws {
        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.post("/echo") { request, _ in
            let buffer = try await JSONBodies.collect(request, limit: 1024)
            return Response(status: .ok, body: ResponseBody(byteBuffer: buffer))
        }
        let limits = HTTPServerLimits(idleTimeout: .milliseconds(400), bodyTimeout: .milliseconds(400))
        let app = Application(router: router, server: limits.server, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }

    @Test("a connection that sends nothing, half its headers, or a trickle of its body is closed")
    func slowClientsAreClosed() async throws {
        try await Self.withServer { port in
            let idle = try RawConnection(port: port)
            #expect(await idle.readToEnd() == ("", true))
            let slowHeaders = try RawConnection(port: port)
            slowHeaders.send("POST /echo HTTP/1.1\r\nHost: test\r\n")
            #expect(await slowHeaders.readToEnd() == ("", true))
            let slowBody = try RawConnection(port: port)
            slowBody.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            // Each byte is activity, which keeps the idle timeout away; the body deadline is not moved.
            var trickled = 0
            while trickled < 40, slowBody.send(" ") {
                try await Task.sleep(for: .milliseconds(100))
                trickled += 1
            }
            #expect(trickled < 40, "the server kept reading a body trickled for 4 s")
            let prompt = try RawConnection(port: port)
            prompt.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            #expect(await prompt.readToEnd().text.hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test("a client that writes its whole over-limit body before reading still reads the 413")
    func tooLargeIsRead() async throws {
        try await Self.withServer { port in
            let connection = try RawConnection(port: port)
            let body = String(repeating: "x", count: 64 * 1024)
            connection.send(
                "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            )
            let answer = await connection.readToEnd().text
            #expect(answer.hasPrefix("HTTP/1.1 413"))
            #expect(answer.contains("limited to 1024 bytes"))
        }
    }
}

/// A blocking TCP connection to loopback, closed when released.
///
/// Its reads block, so they run on a thread of their own (``readToEnd()``): blocking one of the
/// few threads of Swift's cooperative pool, on a loaded two-core machine, can starve the very
/// server task the read waits for (seen in CI: an empty answer to a prompt request). One task uses
/// a connection at a time.
final class RawConnection: @unchecked Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        // A read gives up after 5 s: a server that never closes fails the test instead of hanging it.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// - Returns: `false` once the connection is closed.
    @discardableResult
    func send(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let written = bytes.withUnsafeMutableBytes {
                Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { return false }
            sent += written
        }
        return true
    }

    /// Everything the server sends until it closes the connection, and whether it did close it
    /// (rather than 5 s passing without a byte), read on a thread of its own.
    func readToEnd() async -> (text: String, closed: Bool) {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: self.blockingReadToEnd()) }.start()
        }
    }

    private func blockingReadToEnd() -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var closed = false
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[0..<count]
                continue
            }
            closed = count == 0 || errno == ECONNRESET
            break
        }
        return (String(decoding: received, as: UTF8.self), closed)
    }
}
