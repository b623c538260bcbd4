import BatonCore
import BatonStore
import Foundation

/// The benchmark's peer: the same saga in DBOS Transact (`scripts/peers/dbos_saga.py`), on the
/// same PostgreSQL, in the same run, while `baton serve` is idle.
enum DBOSPeer {
    /// One phase as the peer measured it.
    struct Phase: Codable {
        var phase: String
        var sagas: Int
        var completed: Int
        var failed: Int
        var steps: Int
        var seconds: Double
        var latencyMilliseconds: [Double]
        /// CPU seconds of the peer's Python process and of every PostgreSQL process.
        var cpuSeconds: [String: Double]

        var sagasPerSecond: Double { Double(completed + failed) / seconds }
        var stepsPerSecond: Double { Double(steps) / seconds }

        var line: String {
            let name = "dbos \(phase)".padding(toLength: 13, withPad: " ", startingAt: 0)
            let latency = latencyMilliseconds + [0, 0, 0]
            return String(
                format: "%@ %6d  %9d  %6d  %7.0f  %7.0f  %6.1f / %6.1f / %6.1f", name, sagas, completed, failed, sagasPerSecond,
                stepsPerSecond, latency[0], latency[1], latency[2])
                + "\n               CPU ms per step: "
                + cpuSeconds.sorted { $0.key < $1.key }.map {
                    "\($0.key) \(String(format: "%.2f", $0.value * 1000 / Double(max(steps, 1))))"
                }
                .joined(separator: ", ")
        }
    }

    /// Runs the peer's warm-up and phases. - Returns: its `empty` and `failing-mix` phases.
    static func run(
        python: String, script: String, database: DatabaseURL, count: Int, concurrency: Int, failEvery: Int, log: URL
    ) throws -> [Phase] {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw BenchError("no Python with DBOS at \(python): run scripts/bench, which installs it (or pass --skip-dbos)")
        }
        guard FileManager.default.fileExists(atPath: script) else {
            throw BenchError("the DBOS peer is not at \(script): run baton-bench from the repository (or pass --dbos-script)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            script, "--database-url", database.text, "--count", String(count), "--concurrency", String(concurrency), "--fail-every",
            String(failEvery),
        ]
        let output = Pipe()
        process.standardOutput = output
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0, let last = text.split(separator: "\n").last else {
            throw BenchError("the DBOS peer failed (exit \(process.terminationStatus)); see \(log.path)\n\(text)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode([Phase].self, from: Data(last.utf8))
        } catch {
            throw BenchError("the DBOS peer printed no figures: \(error)\n\(text)")
        }
    }
}
