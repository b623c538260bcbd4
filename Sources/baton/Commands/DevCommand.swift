import ArgumentParser
import BatonLogging
import BatonStore
import Foundation
import Logging

/// `baton dev`: everything on one machine, for development. It starts a throwaway PostgreSQL and a
/// JetStream nats-server on free loopback ports as its own servers (data under `.baton/dev`), then
/// serves, and stops them when it exits.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run Baton with its own throwaway PostgreSQL and NATS (like `temporal server start-dev`).",
        discussion: "Needs the Debian packages postgresql, postgresql-client and nats-server (scripts/services install).")

    @Option(help: "Where the servers keep their data.") var data: String = ".baton/dev"
    @Option(help: "HTTP address to listen on, host:port.") var http: String = "127.0.0.1:8080"
    @Option(help: "Workflow definitions to register: files or directories (default: workflows/ when present).")
    var workflows: [String] = []
    @Option(help: "PostgreSQL's port on 127.0.0.1 (default: a free one).") var databasePort: Int?
    @Option(help: "NATS's port on 127.0.0.1 (default: a free one).") var natsPort: Int?
    @Flag(help: "Start empty: remove the data directory (sagas, workflows, streams) first.") var fresh = false

    func validate() throws {
        for (name, port) in [("--database-port", databasePort), ("--nats-port", natsPort)] {
            if let port, !(1...65535).contains(port) { throw ValidationError("\(name) must be from 1 to 65535, got \(port)") }
        }
    }

    func run() async throws {
        // Before the first logger: a logger keeps the handler it was made with.
        let level = LogSetup.bootstrap(defaultFormat: .text)
        var logger = Logger(label: "baton")
        logger.logLevel = level
        guard let colon = http.lastIndex(of: ":"), let port = Int(http[http.index(after: colon)...]) else {
            throw ValidationError("the HTTP address must be host:port, got '\(http)'")
        }
        // Development has no credentials: the API stays on this machine.
        guard ServeCommand.isLoopback(String(http[..<colon])) else {
            throw ValidationError("baton dev serves without credentials, so only on loopback (127.0.0.1, ::1), not '\(http)'")
        }
        let paths = workflows.isEmpty ? (FileManager.default.fileExists(atPath: "workflows") ? ["workflows"] : []) : workflows
        let definitions = try ServeCommand.definitions(paths)

        // Said at once, before any server starts: a port another process holds.
        let host = String(http[..<colon])
        if port != 0, let problem = DevEnvironment.cannotListen(host: host, port: port) {
            throw ValidationError(
                "cannot listen on \(http): \(problem) (another baton dev or serve?); stop it, or pass --http \(host):\(port + 1)")
        }
        for (name, pinned) in [("--database-port", databasePort), ("--nats-port", natsPort)] {
            if let pinned, let problem = DevEnvironment.cannotListen(host: "127.0.0.1", port: pinned) {
                throw ValidationError("\(name) \(pinned): \(problem); pass another port, or leave it out for a free one")
            }
        }
        let directory = URL(fileURLWithPath: data)
        if fresh {
            Self.say("baton dev: --fresh: removing \(directory.standardizedFileURL.path)")
            try? FileManager.default.removeItem(at: directory)
        }
        let environment = DevEnvironment(directory: directory)
        let urls = try environment.start(databasePort: databasePort, natsPort: natsPort)
        defer { environment.stop() }
        Self.say("baton dev: data       \(directory.standardizedFileURL.path) (kept between runs; --fresh starts empty)")
        Self.say("baton dev: PostgreSQL \(urls.databaseURL)")
        Self.say("baton dev: NATS       \(urls.natsURL)")
        Self.say("baton dev: API        http://\(http)   console http://\(http)/ui")
        Self.say(
            "baton dev: workflows  \(definitions.isEmpty ? "none (pass --workflows PATH, or baton workflows push PATH)" : definitions.map { "\($0.definition.name) v\($0.definition.version)" }.joined(separator: ", "))"
        )
        Self.say("baton dev: a participant connects with BATON_NATS_URL=\(urls.natsURL) (docs/participants.md)")
        if !paths.isEmpty {
            Self.say("baton dev: watching   \(paths.joined(separator: ", ")): a changed version no saga has run is replaced")
        }
        let database: DatabaseURL
        do { database = try DatabaseURL(urls.databaseURL) } catch { throw ValidationError(error.description) }
        var api = try ServeCommand.limits(from: ProcessInfo.processInfo.environment)
        api.replacesUnusedVersions = true
        let (changes, continuation) = AsyncStream.makeStream(of: WorkflowWatcher.Definitions.self)
        let watcher = paths.isEmpty ? nil : Task { await WorkflowWatcher(paths: paths).watch(continuation, say: Self.say) }
        defer { watcher?.cancel() }
        try await ServeCommand.serve(
            database: database, natsURL: urls.natsURL, host: String(http[..<colon]), port: port, api: api, definitions: definitions,
            definitionChanges: paths.isEmpty ? nil : changes, logger: logger, beforeForcedExit: environment.forceStop)
        Self.say("baton dev: stopping PostgreSQL and NATS")
    }

    /// A line to standard output at once: `print` is buffered when stdout is a pipe or a file, and
    /// the lines would appear only when the process exits.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
