import ArgumentParser
import BatonClient
import BatonCore
import Foundation

/// `baton submit WORKFLOW`: start a saga.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Start a saga.",
        discussion: "With --wait, exits 0 when the saga completes and 1 when it fails or is suspended.")

    @Argument(help: "The workflow's name.") var workflow: String
    @Option(help: "The input: JSON text, or @FILE.") var input: String = "{}"
    @Option(help: "The workflow version (default: the newest).") var version: Int?
    @Option(help: "Idempotency key: the same key and input start one saga.") var idempotencyKey: String?
    @Option(help: "Correlation id, carried on every command.") var correlationID: String?
    @Flag(help: "Wait until the saga is finished, then print it.") var wait = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let parsed = try JSONArgument.parse(input, option: "--input")
        var body: [String: JSONValue] = ["workflow": .string(workflow), "input": parsed]
        if let version { body["version"] = .integer(Int64(version)) }
        var headers: [String: String] = [:]
        if let idempotencyKey { headers["Idempotency-Key"] = idempotencyKey }
        if let correlationID { headers["X-Correlation-ID"] = correlationID }
        let client = try server.client
        let response = try await client.request(
            "POST", "/v1/sagas", body: Data(JSONValue.object(body).canonicalJSON.utf8), headers: headers)
        let id = Table.text(response.body.value(at: ["id"]))
        guard wait else {
            if server.json { print(response.body.canonicalJSON) } else { print(id) }
            return
        }
        let saga = try await WatchCommand.follow(id, client: client, output: server.json ? .none : .lines)
        if server.json { print(saga.canonicalJSON) } else { Table.saga(saga) }
        if saga.value(at: ["status"]) != "COMPLETED" { throw ExitCode(1) }
    }
}

/// `baton get ID`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a saga and its steps.")
    @Argument(help: "The saga's id.") var id: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let saga = try await server.client.get("/v1/sagas/\(id)")
        if server.json { print(saga.canonicalJSON) } else { Table.saga(saga) }
    }
}

/// `baton watch ID`: follow a saga step by step until it finishes.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Follow a saga's progress, event by event, until it is finished.",
        discussion: """
            Exits 0 when the saga completes, 1 when it fails or is cancelled, 2 when it is suspended. With --json, \
            each history entry is printed as it happens, one JSON object per line.
            """)
    @Argument(help: "The saga's id.") var id: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let saga = try await Self.follow(id, client: try server.client, output: server.json ? .json : .lines)
        switch saga.value(at: ["status"]) {
        case "COMPLETED": return
        case "SUSPENDED": throw ExitCode(2)
        default: throw ExitCode(1)
        }
    }

    /// How `follow` prints the history entries: as lines for people, as JSON lines, or not at all.
    enum Output { case lines, json, none }

    /// Prints each new history entry until the saga is finished or suspended; returns the saga.
    static func follow(_ id: String, client: BatonClient, output: Output) async throws -> JSONValue {
        var seen = 0
        func printEntries(after: Int) async throws {
            let history = try await client.get("/v1/sagas/\(id)/history?after=\(after)")
            guard case .array(let entries)? = history.value(at: ["entries"]) else { return }
            for entry in entries {
                switch output {
                case .lines: print(line(entry))
                case .json: print(entry.canonicalJSON)
                case .none: break
                }
                if case .integer(let seq)? = entry.value(at: ["seq"]) { seen = Int(seq) }
            }
        }
        var warned: Set<String> = []
        while true {
            try await printEntries(after: seen)
            let saga = try await client.get("/v1/sagas/\(id)?wait=2s")
            // A participant nobody works for is said once, when it is first seen.
            for warning in saga.value(at: ["warnings"])?.arrayValue ?? [] where output == .lines {
                if warned.insert(Table.text(warning)).inserted { print(Style.warning("warning: \(Table.text(warning))")) }
            }
            let status = Table.text(saga.value(at: ["status"]))
            if ["COMPLETED", "FAILED", "CANCELLED", "SUSPENDED"].contains(status) {
                // The last events may have landed after the history was read.
                try await printEntries(after: seen)
                return saga
            }
        }
    }

    /// One history entry: time, status after, step, what happened, and who asked when someone did.
    static func line(_ entry: JSONValue) -> String {
        let step = entry.value(at: ["step"]).flatMap { $0 == .null ? nil : Table.text($0) } ?? "-"
        let actor = entry.value(at: ["actor"]).flatMap { $0 == .null ? nil : " (by \(Table.text($0)))" } ?? ""
        return
            "\(Table.text(entry.value(at: ["at"])))  \(Style.status(Table.text(entry.value(at: ["status_after"]))))  \(step)  \(Table.text(entry.value(at: ["detail"])))\(actor)"
    }
}

/// `baton list`.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List sagas, newest first.")
    @Option(help: "Only these statuses (comma-separated).") var status: String?
    @Option(help: "Only this workflow.") var workflow: String?
    @Option(help: "Only stuck sagas: suspended, compensating, running:<duration>, retries:<n>, awaiting:<duration>.") var stuck: String?
    @Option(help: "At most this many per page (1 to 500).") var limit: Int = 20
    @Flag(help: "Every matching saga: follow the pages to the end.") var all = false
    @Option(help: "Continue from a page's next cursor (printed under a page that has more).") var cursor: String?
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard (1...500).contains(limit) else { throw ValidationError("--limit must be from 1 to 500, got \(limit)") }
    }

    func run() async throws {
        var query = ["limit=\(limit)"]
        if let status { query.append("status=\(Self.escaped(status))") }
        if let workflow { query.append("workflow=\(Self.escaped(workflow))") }
        if let stuck { query.append("stuck=\(Self.escaped(stuck))") }
        let client = try server.client
        var sagas: [JSONValue] = []
        var next = cursor
        repeat {
            let page = try await client.get(
                "/v1/sagas?" + (query + (next.map { ["cursor=\(Self.escaped($0))"] } ?? [])).joined(separator: "&"))
            sagas += page.value(at: ["sagas"])?.arrayValue ?? []
            next = page.value(at: ["next_cursor"])?.stringValue
        } while all && next != nil
        if server.json {
            print(JSONValue.object(["sagas": .array(sagas), "next_cursor": next.map(JSONValue.string) ?? .null]).canonicalJSON)
            return
        }
        var rows = [["ID", "WORKFLOW", "STATUS", "STEP", "RETRIES", "CREATED", "NOTE"]]
        for saga in sagas {
            // Why a saga is where it is, when the status alone does not say.
            let suspension = saga.value(at: ["suspension_reason"]).flatMap { $0 == .null ? nil : Table.text($0) }
            let note = Table.cancellation(of: saga).map { "cancelled: \($0)" } ?? suspension ?? ""
            var row = ["id", "workflow", "status", "current_step", "retries", "created_at"].map { Table.text(saga.value(at: [$0])) }
            row[2] = Style.status(row[2])
            rows.append(row + [note])
        }
        Table.print(rows)
        if let next { print("more: add --cursor \(next) for the next page, or --all for every one") }
    }

    /// A value for a query string.
    static func escaped(_ value: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

/// `baton cancel ID`.
struct SignalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal", abstract: "Send a saga a signal, for its step that waits for it.",
        discussion: """
            The waiting step succeeds with --payload as its output, or fails with --fail CODE. A signal sent before \
            its step waits is kept until it does. Sending the same signal again with the same --key changes nothing.
            """)
    @Argument(help: "The saga's id.") var id: String
    @Argument(help: "The signal's name, as the workflow's step names it (signal: NAME).") var name: String
    @Option(help: "The waiting step's output: JSON text, or @FILE.") var payload: String?
    @Option(help: "Fail the waiting step with this error code instead.") var fail: String?
    @Option(help: "The failure's message (with --fail).") var message: String = ""
    @Option(help: "Idempotency key: the same key names the same signal.") var key: String?
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body: JSONValue
        if let fail {
            guard payload == nil else { throw ValidationError("give --payload or --fail, not both") }
            body = ["failed": ["code": .string(fail), "message": .string(message)]]
        } else {
            body = ["payload": try payload.map { try JSONArgument.parse($0, option: "--payload") } ?? .null]
        }
        let response = try await server.client.request(
            "POST", "/v1/sagas/\(id)/signals/\(name)", body: Data(body.canonicalJSON.utf8),
            headers: key.map { ["Idempotency-Key": $0] } ?? [:])
        if server.json {
            print(response.body.canonicalJSON)
            return
        }
        let consumed = response.status == 202 ? "received" : "already received"
        print("\(id) \(Table.text(response.body.value(at: ["status"]))) (signal '\(name)' \(consumed))")
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a saga: undo what it did (refused past its pivot).")
    @Argument(help: "The saga's id.") var id: String
    @Option(help: "Why, for the history.") var reason: String = "cancelled from the command line"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let body: JSONValue = ["reason": .string(reason)]
        let response = try await server.client.request("POST", "/v1/sagas/\(id)/cancel", body: Data(body.canonicalJSON.utf8))
        if server.json { print(response.body.canonicalJSON) } else { print("\(id) \(Table.text(response.body.value(at: ["status"])))") }
    }
}
