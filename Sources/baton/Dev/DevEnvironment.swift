import ArgumentParser
import BatonTransport
import Foundation

/// The servers `baton dev` runs for itself: a throwaway PostgreSQL cluster and a JetStream
/// nats-server, on free loopback ports, with their data under one directory (`.baton/dev`).
///
/// PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user (and
/// lives under /tmp when that user cannot reach the directory). The same steps as
/// `scripts/services`, which the tests use.
final class DevEnvironment {
    let directory: URL
    private var nats: Process?
    private var postgresData: URL?
    private var postgresBin: URL?

    init(directory: URL) { self.directory = directory.standardizedFileURL }

    var isRoot: Bool { getuid() == 0 }

    /// Starts both servers, on the ports given or on free ones, after stopping any that an earlier
    /// run left behind (killed with SIGKILL, or its terminal closed). - Returns: their URLs.
    func start(databasePort: Int? = nil, natsPort: Int? = nil) throws -> (databaseURL: String, natsURL: String) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        stopStaleServers()
        let databasePort = try startPostgres(port: databasePort)
        let natsPort = try startNATS(port: natsPort)
        try watchOver()
        return ("postgres://baton@127.0.0.1:\(databasePort)/baton", "nats://127.0.0.1:\(natsPort)")
    }

    /// Starts a watchdog that stops both servers within a second or two of this process's end,
    /// however it ends (SIGKILL, a closed terminal): a shell of its own session (`setsid`, so that
    /// the terminal's hang-up does not reach it) that waits for this process to be gone. After a
    /// normal exit it finds nothing left to stop.
    private func watchOver() throws {
        guard let data = postgresData, let bin = postgresBin, let nats else { return }
        let stop = isRoot ? "/usr/sbin/runuser -u postgres -- \(bin.path)/pg_ctl" : "\(bin.path)/pg_ctl"
        // A zombie (ended, not yet reaped by whoever started it) has ended too.
        let script = """
            trap '' HUP INT TERM
            alive() { state=$(sed -n 's/^.*) \\([A-Z]\\).*/\\1/p' /proc/\(getpid())/stat 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]; }
            while alive; do sleep 1; done
            grep -q nats-server /proc/\(nats.processIdentifier)/cmdline 2>/dev/null && kill \(nats.processIdentifier)
            cd / && \(stop) -D '\(data.path)' -m fast -w -t 10 stop >/dev/null 2>&1
            """
        try run(URL(fileURLWithPath: "/usr/bin/setsid"), ["-f", "/bin/sh", "-c", script], capture: false)
    }

    /// The nats-server an earlier run started, by the pid it wrote.
    private var natsPidFile: URL { directory.appending(path: "nats.pid") }

    /// Stops the servers an earlier run of this data directory left running: its nats-server (by
    /// its pid file, when that process is still a nats-server) and its PostgreSQL (by the cluster's
    /// own postmaster.pid, with pg_ctl).
    private func stopStaleServers() {
        if let text = try? String(contentsOf: natsPidFile, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            pid > 0, Self.commandLine(of: pid)?.contains("nats-server") == true
        {
            FileHandle.standardOutput.write(Data("baton dev: stopping the nats-server an earlier run left (pid \(pid))\n".utf8))
            kill(pid, SIGTERM)
            for _ in 0..<50 where kill(pid, 0) == 0 { usleep(100_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(at: natsPidFile)
        let clusterDirectory = directory.appending(path: "postgres")
        guard FileManager.default.fileExists(atPath: clusterDirectory.path), let data = try? dataDirectory(in: clusterDirectory),
            let text = try? String(contentsOf: data.appending(path: "postmaster.pid"), encoding: .utf8),
            let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }), pid > 0, kill(pid, 0) == 0,
            Self.commandLine(of: pid)?.contains("postgres") == true,
            let bin = Self.postgresBin()
        else { return }
        FileHandle.standardOutput.write(Data("baton dev: stopping the PostgreSQL an earlier run left (pid \(pid))\n".utf8))
        _ = try? run(
            bin.appending(path: "pg_ctl"), ["-D", data.path, "-m", "fast", "-w", "-t", "10", "stop"], asPostgres: true, capture: false)
    }

    /// A process's command line, or `nil` when there is no such process.
    static func commandLine(of pid: pid_t) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    /// Why nothing can listen on host:port now (another process holds it), or `nil` when it can.
    static func cannotListen(host: String, port: Int) -> String? {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return nil }
        defer { close(socket) }
        var reuse: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if family == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), &address.sin6_addr)
            bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
            address.sin_port = UInt16(port).bigEndian
            bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        return bound == 0 ? nil : String(cString: strerror(errno))
    }

    /// The newest PostgreSQL's programs, when one is installed.
    static func postgresBin() -> URL? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.filter({ FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\($0)/bin/initdb") })
            .max(by: { $0.compare($1, options: .numeric) == .orderedAscending })
            .map { URL(fileURLWithPath: "/usr/lib/postgresql/\($0)/bin") }
    }

    /// Stops both servers (fast shutdown for PostgreSQL: open transactions roll back).
    func stop() {
        if let nats, nats.isRunning {
            // At most 5 s, then SIGKILL: its data is throwaway, and the exit SIGTERM asked for must
            // not wait on it.
            nats.terminate()
            let deadline = ContinuousClock.now + .seconds(5)
            while nats.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
            if nats.isRunning { kill(nats.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: natsPidFile)
        }
        if let bin = postgresBin, let data = postgresData {
            // At most 5 s: a cluster that went away on its own (a crash, an outage) must not hold up
            // the exit that SIGTERM asked for.
            _ = try? run(
                bin.appending(path: "pg_ctl"), ["-D", data.path, "-m", "fast", "-w", "-t", "5", "stop"], asPostgres: true, capture: false)
        }
    }

    /// Ends both servers at once with SIGKILL, for the shutdown deadline (``ShutdownDeadline``):
    /// their data is throwaway, and PostgreSQL recovers from it on the next start.
    var forceStop: @Sendable () -> Void {
        let natsID = nats?.processIdentifier
        let postmasterFile = postgresData?.appending(path: "postmaster.pid").path
        return {
            if let natsID { kill(natsID, SIGKILL) }
            if let postmasterFile, let text = try? String(contentsOfFile: postmasterFile, encoding: .utf8),
                let postmaster = text.split(separator: "\n").first.flatMap({ pid_t($0) }), postmaster > 0
            {
                kill(postmaster, SIGKILL)
            }
        }
    }

    // MARK: - PostgreSQL

    private func startPostgres(port pinned: Int?) throws -> Int {
        guard let bin = Self.postgresBin() else {
            throw ValidationError("PostgreSQL is not installed (apt-get install postgresql), or run scripts/services install")
        }
        postgresBin = bin
        let clusterDirectory = directory.appending(path: "postgres")
        try FileManager.default.createDirectory(at: clusterDirectory, withIntermediateDirectories: true)
        let data = try dataDirectory(in: clusterDirectory)
        postgresData = data
        if !FileManager.default.fileExists(atPath: data.appending(path: "PG_VERSION").path) {
            try? FileManager.default.removeItem(at: data)
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            if isRoot { try run(URL(fileURLWithPath: "/bin/chown"), ["postgres", data.path]) }
            try run(
                bin.appending(path: "initdb"), ["-D", data.path, "-U", "baton", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                asPostgres: true)
        }
        let port = try pinned ?? LoopbackPort.free()
        try run(
            bin.appending(path: "pg_ctl"),
            [
                "-D", data.path, "-l", data.appending(path: "server.log").path, "-w", "-t", "60", "-o",
                "-c listen_addresses=127.0.0.1 -p \(port) -c unix_socket_directories=\(data.path)", "start",
            ],
            asPostgres: true, capture: false)
        let exists = try run(
            URL(fileURLWithPath: "/usr/bin/psql"),
            [
                "-h", "127.0.0.1", "-p", "\(port)", "-U", "baton", "-d", "postgres", "-Atqc",
                "select 1 from pg_database where datname = 'baton'",
            ])
        if !exists.contains("1") {
            try run(
                URL(fileURLWithPath: "/usr/bin/psql"),
                ["-h", "127.0.0.1", "-p", "\(port)", "-U", "baton", "-d", "postgres", "-qc", "create database baton"])
        }
        return port
    }

    /// `postgres/data`, unless (as root) the postgres user cannot reach it: then a private
    /// directory under /tmp, remembered in `postgres/data-location`.
    private func dataDirectory(in clusterDirectory: URL) throws -> URL {
        let location = clusterDirectory.appending(path: "data-location")
        if let saved = try? String(contentsOf: location, encoding: .utf8) {
            return URL(fileURLWithPath: saved.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard isRoot else { return clusterDirectory.appending(path: "data") }
        for path in [directory, clusterDirectory] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path.path)
        }
        if (try? run(URL(fileURLWithPath: "/usr/bin/test"), ["-x", clusterDirectory.path], asPostgres: true)) != nil {
            return clusterDirectory.appending(path: "data")
        }
        let fallback = URL(fileURLWithPath: "/tmp/baton-dev-postgres-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: fallback, withIntermediateDirectories: true)
        try run(URL(fileURLWithPath: "/bin/chown"), ["postgres", fallback.path])
        let data = fallback.appending(path: "data")
        try data.path.write(to: location, atomically: true, encoding: .utf8)
        return data
    }

    // MARK: - NATS

    private func startNATS(port pinned: Int?) throws -> Int {
        let port = try pinned ?? LoopbackPort.free()
        let storage = directory.appending(path: "nats")
        try FileManager.default.createDirectory(at: storage, withIntermediateDirectories: true)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["nats-server", "-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", storage.path]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        do { try server.run() } catch { throw ValidationError("nats-server could not start (apt-get install nats-server): \(error)") }
        nats = server
        // So that the next run can stop it if this one dies without stopping it (SIGKILL).
        try? "\(server.processIdentifier)".write(to: natsPidFile, atomically: true, encoding: .utf8)
        for _ in 0..<100 {
            if Self.accepts(port) { return port }
            usleep(100_000)
        }
        throw ValidationError("nats-server did not start listening on 127.0.0.1:\(port)")
    }

    // MARK: - Processes and ports

    /// Runs a command to completion (as the postgres user when root and `asPostgres`, from `/` so
    /// that user never needs to enter a private working directory); returns its output, or throws
    /// with it.
    ///
    /// posix_spawn and waitpid rather than Foundation's Process, whose exit detection can miss a
    /// child here; and without capturing output for a command that starts a server (pg_ctl start),
    /// since the server inherits it and would keep the pipe open.
    @discardableResult
    private func run(_ executable: URL, _ arguments: [String], asPostgres: Bool = false, capture: Bool = true) throws -> String {
        let direct = asPostgres && isRoot ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable.path] : [executable.path]
        let command = ["/bin/sh", "-c", "cd / && exec \"$@\"", "sh"] + direct + arguments
        let output = FileManager.default.temporaryDirectory.appending(path: "baton-dev-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let target = capture ? output.path : "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, target, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
        guard spawned == 0 else { throw ValidationError("\(command[0]) could not start: \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = capture ? ((try? String(contentsOf: output, encoding: .utf8)) ?? "") : ""
        let exited = (status & 0x7f) == 0
        guard exited && (status >> 8) & 0xff == 0 else {
            throw ValidationError("\(executable.lastPathComponent) failed: \(text)")
        }
        return text
    }

    static func accepts(_ port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
