import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process of the benchmark (`baton serve`, the no-op workers), killed when it is done.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let name: String

    /// Starts `executable` with `arguments`; standard error goes to `log`.
    init(_ name: String, executable: URL, arguments: [String], environment: [String: String] = [:], log: URL) throws {
        self.name = name
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        Children.register(self)
    }

    var pid: Int32 { process.processIdentifier }

    /// The resident set size now, in bytes (from `/proc`), or nil once the process is gone.
    var residentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }

    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Stops every child still running when the benchmark is interrupted (SIGINT, SIGTERM): a
/// `baton serve` left behind would reconnect to the next run's database and take its work.
enum Children {
    nonisolated(unsafe) private static var running: [ChildProcess] = []
    private static let lock = NSLock()
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func register(_ child: ChildProcess) {
        lock.withLock { running.append(child) }
    }

    /// Installs the handlers, once, before the first child starts.
    static func stopOnSignals() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                for child in lock.withLock({ running }) { child.stop() }
                exit(130)
            }
            source.resume()
            lock.withLock { sources.append(source) }
        }
    }
}

/// Samples a process's resident set size every 100 ms and keeps the peak.
final class PeakMemory: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var task: Task<Void, Never>?

    func start(_ child: ChildProcess) {
        reset()
        task = Task {
            while !Task.isCancelled {
                if let bytes = child.residentBytes { self.lock.withLock { self.peak = max(self.peak, bytes) } }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func reset() { lock.withLock { peak = 0 } }

    /// The peak since `start` or `reset`, in MiB.
    var peakMiB: Double { lock.withLock { Double(peak) / 1_048_576 } }

    func stop() { task?.cancel() }
}
