import Foundation

extension Process {
    /// Whether the process has ended, asked of the kernel.
    ///
    /// Not `isRunning` alone: Foundation learns of an exit when a socket it handed the child is
    /// closed, and a process another test spawns at that moment can inherit the socket and keep it
    /// open (swift-corelibs-foundation#4795), so `isRunning` (and `waitUntilExit`) can stay stuck
    /// long after the exit. A zombie, exited but not yet reaped, has ended.
    var hasEnded: Bool {
        guard isRunning else { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(processIdentifier)/stat", encoding: .utf8) else { return true }
        // The state is the field after the command name, which is in parentheses and may hold spaces.
        guard let nameEnd = stat.lastIndex(of: ")") else { return true }
        let state = stat[nameEnd...].dropFirst().drop { $0 == " " }.first
        return state == "Z" || state == "X"
    }

    /// Waits until the process has ended (``hasEnded``), for at most `limit`.
    /// - Returns: whether it has.
    @discardableResult
    func waitForEnd(atMost limit: Duration = .seconds(30)) -> Bool {
        let deadline = ContinuousClock.now + limit
        while !hasEnded {
            guard ContinuousClock.now < deadline else { return false }
            usleep(20_000)
        }
        return true
    }

    /// SIGTERM, then SIGKILL if it has not ended within `grace`; returns once it has ended.
    func stop(grace: Duration = .seconds(10)) {
        guard !hasEnded else { return }
        terminate()
        if !waitForEnd(atMost: grace) {
            kill(processIdentifier, SIGKILL)
            waitForEnd()
        }
    }
}
