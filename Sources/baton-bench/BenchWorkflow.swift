import BatonCore
import BatonWorker
import Foundation

/// The benchmark's workflows and their no-op participants: three steps, each with a compensation,
/// so that every figure is the orchestrator's and the transport's, not a participant's.
enum BenchWorkflow {
    static let participants = ["bench-a", "bench-b", "bench-c"]

    /// `bench-3`: three no-op steps; `fail: true` makes the last one fail, so the first two are
    /// compensated. `bench-storm` is the same with a one-hour timeout, for the timer storm.
    static func yaml(name: String, timeout: String) -> String {
        """
        name: \(name)
        version: 1
        description: Three no-op steps for baton-bench.
        input:
          required: [n, fail]
          properties:
            n: { type: integer }
            fail: { type: boolean }
        steps:
        \(participants.map { participant in
            """
              - name: step-\(participant.dropFirst(6))
                participant: \(participant)
                action: run
                payload: { n: "{{input.n}}", fail: "{{input.fail}}" }
                timeout: \(timeout)
                retry: { max_attempts: 2, backoff: fixed, initial: 1s }
                compensate: { action: undo, payload: { n: "{{input.n}}" } }
            """
        }.joined(separator: "\n"))
        """
    }

    /// Writes both workflows into a new directory; returns it.
    static func write() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appending(path: "baton-bench-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try yaml(name: "bench-3", timeout: "30s").write(to: directory.appending(path: "bench-3.yaml"), atomically: true, encoding: .utf8)
        try yaml(name: "bench-storm", timeout: "1h").write(
            to: directory.appending(path: "bench-storm.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    /// The no-op handlers of `participant`: the last step fails when the input says so.
    static func handlers(for participant: String) -> WorkerHandlers {
        var handlers = WorkerHandlers()
        let failing = participant == participants.last
        handlers.action("run") { context in
            if failing, context.payload.value(at: ["fail"]) == .bool(true) {
                throw BusinessFailure(code: "bench_failure", message: "asked to fail")
            }
            return [:]
        }
        handlers.compensation("undo") { _ in [:] }
        return handlers
    }
}
