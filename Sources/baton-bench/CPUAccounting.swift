import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// CPU time used by the processes that take part in a run, read from `/proc/<pid>/stat`, so a
/// phase can say where its CPU went (the machine has two cores; every part shares them).
enum CPUAccounting {
    /// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`).
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// CPU seconds (user and system) used so far, by part: `baton serve`, the workers, this
    /// driver, every PostgreSQL backend, and nats-server.
    static func snapshot(serve: Int32, workers: Int32?, nats: Int32) -> [String: Double] {
        var totals: [String: Double] = [:]
        totals["baton serve"] = seconds(of: serve)
        if let workers { totals["workers"] = seconds(of: workers) }
        totals["driver"] = seconds(of: getpid())
        totals["nats-server"] = seconds(of: nats)
        totals["postgres"] = postgresSeconds()
        return totals.compactMapValues { $0 }
    }

    /// CPU seconds used so far by every PostgreSQL process.
    static func postgresSeconds() -> Double {
        var total = 0.0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                comm.hasPrefix("postgres")
            else { continue }
            total += seconds(of: pid, withReapedChildren: true) ?? 0
        }
        return total
    }

    /// - Parameter withReapedChildren: Add the CPU of the process's children that have exited and
    ///   been waited for. PostgreSQL's backends come and go (a client's pool closes connections):
    ///   their time lands in the postmaster's, so the sum over PostgreSQL's processes never drops.
    static func seconds(of pid: Int32, withReapedChildren: Bool = false) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15,
        // the reaped children's cutime and cstime 16 and 17.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let wanted = withReapedChildren ? 11...14 : 11...12
        guard fields.count > wanted.upperBound else { return nil }
        var ticks = 0.0
        for index in wanted {
            guard let value = Double(fields[index]) else { return nil }
            ticks += value
        }
        return ticks / ticksPerSecond
    }

    /// CPU milliseconds per saga-step by part, between two snapshots.
    static func perStep(from start: [String: Double], to end: [String: Double], steps: Int) -> [String: Double] {
        var result: [String: Double] = [:]
        for (part, value) in end {
            result[part] = (value - (start[part] ?? 0)) * 1000 / Double(max(steps, 1))
        }
        return result
    }
}
