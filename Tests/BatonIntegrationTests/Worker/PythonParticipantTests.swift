import BatonCore
import BatonTransport
import Foundation
import Testing

/// A participant in another language answers real commands the way the Swift worker does: the
/// Python example (`docs/examples/python-participant`, on the Python worker SDK that `scripts/test`
/// installs into `.baton/python`).
@Suite("A participant in Python, on the Python worker SDK")
struct PythonParticipantTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().appending(path: "../../../docs/examples/python-participant/participant.py").standardized

    /// The first line a process writes (empty if it exits first), read on a thread of its own:
    /// reading a pipe blocks.
    static func firstLine(of handle: FileHandle) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var data = Data()
                while !data.contains(10) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data += chunk
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self).components(separatedBy: "\n").first ?? "")
            }
        }
    }

    @Test("answers actions, failures and compensations, repeats answers, and dead-letters poison")
    func pythonParticipant() async throws {
        let orchestrator = try await WorkerTests.Orchestrator.make()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script.path, orchestrator.participant]
        var environment = ProcessInfo.processInfo.environment
        environment["BATON_NATS_URL"] = try TestServers.natsURL
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        defer { process.stop() }

        // It says when it is ready (it has bound to its consumer).
        let line = await Self.firstLine(of: output.fileHandleForReading)
        guard line.hasSuffix("ready") else {
            let stderr = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            Issue.record("the Python participant did not start (./scripts/test installs the Python worker SDK): \(stderr)")
            return
        }

        let quote = orchestrator.command("quote", step: "price", payload: ["amount": 250, "quantity": 4])
        var repeated = quote
        repeated.attempt = 2
        let invalid = orchestrator.command("quote", step: "zero", payload: ["amount": 250, "quantity": 0])
        var release = orchestrator.command("release", step: "undo")
        release.direction = .compensation
        release.idempotencyKey = StepCommand.idempotencyKey(sagaID: release.sagaID, step: "undo", direction: .compensation)
        var poison = orchestrator.command("quote", step: "poison").outgoing
        poison.headers.removeAll { $0.name == "Baton-Deadline" }

        for message in [quote.outgoing, invalid.outgoing, release.outgoing, poison] { try await orchestrator.jetStream.publish(message) }
        try await orchestrator.jetStream.publish(repeated.outgoing)

        let replies = try await orchestrator.replies(4)
        let price = replies.filter { $0.step == "price" }
        #expect(price.map(\.attempt) == [1, 2])
        #expect(price.allSatisfy { $0.status == .succeeded(output: ["total": 1000]) })
        #expect(price.first?.correlationID == "corr-price")
        #expect(replies.first { $0.step == "zero" }?.status == .failed(code: "invalid_quantity", message: "quantity 0 is not positive"))
        let undo = replies.first { $0.step == "undo" }
        #expect(undo?.status == .succeeded(output: .null))
        #expect(undo?.direction == .compensation)

        let letters = try await orchestrator.deadLetters(1)
        #expect(letters.first?.header("Baton-Dead-Letter-Reason") == "header Baton-Deadline is missing")
        #expect(letters.first?.header("Baton-Dead-Letter-Subject") == "baton.cmd.\(orchestrator.participant).quote")
    }
}
