import BatonStore
import Foundation

/// Everything one run measured, and how it prints.
struct Report: Codable {
    var count: Int
    var concurrency: Int
    var failEvery: Int
    var phases: [PhaseFigures] = []
    var preloaded: Int?
    /// What retention removed during the `sweeping` phase, when it ran.
    var retention: RetentionFigures?
    var storm: StormFigures?
    var pgbenchTPS: Double?
    /// PostgreSQL's CPU per `pgbench -N` transaction, in milliseconds.
    var pgbenchPostgresCPUMilliseconds: Double?
    /// The database's share of a step alone (``StepFloor``), when it ran.
    var stepFloor: StepFloor.Figures?
    /// The peer's phases (``DBOSPeer``), when it ran.
    var dbos: [DBOSPeer.Phase]?

    var summary: String {
        var lines = ["", "baton-bench: summary (\(count) sagas per phase, \(concurrency) in flight)"]
        if let pgbenchTPS {
            lines.append("  pgbench -N: \(String(format: "%.0f", pgbenchTPS)) tps")
            for phase in phases {
                lines.append(
                    "  \(phase.phase): \(String(format: "%.0f", phase.legsPerSecond)) saga-steps/s = "
                        + "\(String(format: "%.3f", phase.legsPerSecond / pgbenchTPS)) x pgbench -N tps")
            }
            if let stepFloor {
                lines.append(
                    "  step floor (a step's rows in plain SQL, database alone): \(String(format: "%.0f", stepFloor.tps)) steps/s = "
                        + "\(String(format: "%.3f", stepFloor.tps / pgbenchTPS)) x pgbench -N tps; PostgreSQL CPU "
                        + "\(String(format: "%.2f", stepFloor.postgresCPUMilliseconds)) ms per step, "
                        + "\(String(format: "%.2f", pgbenchPostgresCPUMilliseconds ?? 0)) ms per pgbench -N transaction")
            }
        }
        for peer in dbos ?? [] {
            guard let phase = phases.first(where: { $0.phase == peer.phase }) else { continue }
            lines.append(
                "  \(phase.phase): \(String(format: "%.0f", phase.sagasPerSecond)) sagas/s = "
                    + "\(String(format: "%.2f", phase.sagasPerSecond / peer.sagasPerSecond)) x DBOS Transact "
                    + "(\(String(format: "%.0f", peer.sagasPerSecond)) sagas/s)")
        }
        if let empty = phases.first(where: { $0.phase == "empty" }), let scaled = phases.first(where: { $0.phase == "scaled" }) {
            lines.append(
                "  with \(preloaded ?? 0) finished sagas: \(String(format: "%.3f", scaled.sagasPerSecond / empty.sagasPerSecond)) x the throughput of an empty database"
            )
        }
        if let scaled = phases.first(where: { $0.phase == "scaled" }), let sweeping = phases.first(where: { $0.phase == "sweeping" }),
            let retention
        {
            lines.append(
                "  while retention removed \(retention.removedDuringPhase) of them: \(String(format: "%.3f", sweeping.sagasPerSecond / scaled.sagasPerSecond)) x the throughput of the scaled phase"
            )
        }
        return lines.joined(separator: "\n")
    }
}

extension PhaseFigures {
    static let header =
        "phase          sagas  completed  failed  sagas/s  steps/s  latency p50/p90/p99 ms   step p50/p99 ms  serve peak RSS MiB"

    var line: String {
        let name = phase.padding(toLength: 13, withPad: " ", startingAt: 0)
        return String(
            format: "%@ %6d  %9d  %6d  %7.0f  %7.0f  %6.1f / %6.1f / %6.1f   %5.2f / %6.2f    %6.1f", name, sagas, completed, failed,
            sagasPerSecond, legsPerSecond, latencyP50 * 1000, latencyP90 * 1000, latencyP99 * 1000, stepP50 * 1000, stepP99 * 1000,
            peakRSSMiB)
    }
}

extension DatabaseURL {
    /// The URL as `baton serve --database-url` takes it.
    var text: String {
        let credentials = password.map { "\(username):\($0)" } ?? username
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }
}
