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

        let environment = DevEnvironment(directory: URL(fileURLWithPath: data))
        let urls = try environment.start()
        defer { environment.stop() }
        Self.say("baton dev: PostgreSQL \(urls.databaseURL)")
        Self.say("baton dev: NATS       \(urls.natsURL)")
        let database: DatabaseURL
        do { database = try DatabaseURL(urls.databaseURL) } catch { throw ValidationError(error.description) }
        try await ServeCommand.serve(
            database: database, natsURL: urls.natsURL, host: String(http[..<colon]), port: port,
            api: try ServeCommand.limits(from: ProcessInfo.processInfo.environment), definitions: definitions, logger: logger,
            beforeForcedExit: environment.forceStop)
        Self.say("baton dev: stopping PostgreSQL and NATS")
    }

    /// A line to standard output at once: `print` is buffered when stdout is a pipe or a file, and
    /// the lines would appear only when the process exits.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
