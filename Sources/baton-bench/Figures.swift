import BatonStore
import Foundation
import PostgresNIO

/// What one load phase measured, read back from Baton's own tables after the phase.
struct PhaseFigures: Codable {
    var phase: String
    var sagas: Int
    var completed: Int
    var failed: Int
    var seconds: Double
    /// Step legs (actions and compensations) per saga, summed.
    var legs: Int
    var latencyP50: Double
    var latencyP90: Double
    var latencyP99: Double
    var stepP50: Double
    var stepP99: Double
    var peakRSSMiB: Double
    /// CPU milliseconds per saga-step, by part (`CPUAccounting`).
    var cpuMillisecondsPerStep: [String: Double] = [:]

    var sagasPerSecond: Double { Double(completed + failed) / seconds }
    var legsPerSecond: Double { Double(legs) / seconds }

    /// Reads the figures of the sagas whose correlation id starts with `phase-`.
    static func read(phase: String, peakRSSMiB: Double, from database: PostgresClient) async throws -> PhaseFigures {
        let pattern = "\(phase)-%"
        let totals = try await database.query(
            """
            SELECT count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
                extract(epoch FROM max(finished_at) - min(created_at))::float8, sum(attempts)::bigint,
                percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)::float8)
            FROM baton.sagas WHERE correlation_id LIKE \(pattern)
            """)
        var figures: PhaseFigures?
        for try await (completed, failed, seconds, legs, latency) in totals.decode((Int, Int, Double, Int, [Double]).self) {
            figures = PhaseFigures(
                phase: phase, sagas: completed + failed, completed: completed, failed: failed, seconds: seconds, legs: legs,
                latencyP50: latency[0], latencyP90: latency[1], latencyP99: latency[2], stepP50: 0, stepP99: 0,
                peakRSSMiB: peakRSSMiB)
        }
        guard var figures else { throw BenchError("no sagas of phase \(phase)") }
        // A step's round trip: from the commit that queued its command to the commit that applied
        // its reply. The handler is a no-op, so this is the orchestration and transport overhead.
        let steps = try await database.query(
            """
            SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM st.finished_at - st.command_sent_at)::float8)
            FROM baton.saga_steps st JOIN baton.sagas s ON s.id = st.saga_id
            WHERE s.correlation_id LIKE \(pattern) AND st.status = 'SUCCEEDED' AND st.attempt = 1
            """)
        for try await quantiles in steps.decode([Double].self) {
            figures.stepP50 = quantiles[0]
            figures.stepP99 = quantiles[1]
        }
        return figures
    }
}

/// `pgbench` on a database of its own on the same server: `-N` (simple updates, no branch
/// contention) by default, or a workload of the benchmark's own (``StepFloor``).
enum PGBench {
    /// Runs `transactions` per client. (`-T` would need SIGALRM, which a process spawned from a
    /// Swift concurrency thread inherits blocked: pgbench then never stops.)
    /// - Parameter workload: pgbench's options for what to run; `-N` first initializes its tables.
    static func tps(url: DatabaseURL, clients: Int, transactions: Int, workload: [String] = ["-N"], log: URL) throws -> Double {
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = url.password ?? ""
        let connection: [String] = ["-h", url.host, "-p", String(url.port), "-U", url.username, url.database]
        if workload == ["-N"] {
            try run(["-i", "-q", "-s", "10"] + connection, environment: environment, log: log)
        }
        let load: [String] = workload + ["-c", String(clients), "-j", "2", "-t", String(transactions)]
        let output = try run(load + connection, environment: environment, log: log)
        for line in output.split(separator: "\n") where line.hasPrefix("tps = ") {
            if let value = Double(line.dropFirst(6).prefix { $0 != " " }) { return value }
        }
        throw BenchError("pgbench printed no tps: \(output)")
    }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String], log: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["pgbench"] + arguments
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        if let handle = try? FileHandle(forWritingTo: log) {
            handle.seekToEndOfFile()
            handle.write(Data(("$ pgbench " + arguments.joined(separator: " ") + "\n" + text).utf8))
        }
        guard process.terminationStatus == 0 else { throw BenchError("pgbench failed:\n\(text)") }
        return text
    }
}
