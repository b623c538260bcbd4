import ArgumentParser
import BatonClient
import BatonCore
import Foundation

/// What the operator commands share: the saga, the reason every action is recorded with, and the
/// request they all make (`POST /v1/sagas/{id}/actions`, scope `operator`).
struct OperatorActionOptions: ParsableArguments {
    @Argument(help: "The saga's id (a SUSPENDED saga).") var id: String
    @Option(help: "Why: recorded in the saga's history with your name (required).") var reason: String
    @OptionGroup var server: ServerOptions

    func act(_ action: String, step: String? = nil) async throws {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--reason must say why: every operator action is recorded with its reason")
        }
        var body: [String: JSONValue] = ["action": .string(action), "reason": .string(reason)]
        if let step { body["step"] = .string(step) }
        let response = try await server.client.request(
            "POST", "/v1/sagas/\(id)/actions", body: Data(JSONValue.object(body).canonicalJSON.utf8))
        if server.json {
            print(response.body.canonicalJSON)
        } else {
            print("\(id) \(Style.status(Table.text(response.body.value(at: ["status"]))))  (\(action) recorded)")
        }
    }
}

/// `baton retry ID --reason …`.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Send a SUSPENDED saga's stuck step (or compensation) again, with a fresh retry budget.",
        discussion: "For when the cause is fixed. The leg keeps its idempotency key, so a participant applies it once.")
    @OptionGroup var action: OperatorActionOptions
    func run() async throws { try await action.act("retry") }
}

/// `baton skip ID --step STEP --reason …`.
struct SkipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skip", abstract: "Mark a SUSPENDED saga's step SKIPPED and go on.",
        discussion: "For a step whose effect was done by hand, or is not needed.")
    @Option(help: "The step to skip.") var step: String
    @OptionGroup var action: OperatorActionOptions
    func run() async throws { try await action.act("skip", step: step) }
}

/// `baton resolve ID --reason …`.
struct ResolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "End a SUSPENDED saga: COMPLETED when it was moving forward, FAILED when it was compensating.",
        discussion: "For when everything left was settled by hand.")
    @OptionGroup var action: OperatorActionOptions
    func run() async throws { try await action.act("resolve") }
}

/// `baton compensate ID --reason …`.
struct CompensateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compensate", abstract: "Undo the steps before the pivot of a saga SUSPENDED at its pivot.",
        discussion: "For when the pivot did not take effect.")
    @OptionGroup var action: OperatorActionOptions
    func run() async throws { try await action.act("compensate") }
}

/// `baton history ID`: every history entry, oldest first.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Print a saga's whole history, oldest first.",
        discussion: "With --json, one JSON entry per line.")
    @Argument(help: "The saga's id.") var id: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        var after = 0
        var rows = [["SEQ", "AT", "KIND", "STEP", "STATUS", "BY", "DETAIL"]]
        while true {
            let page = try await server.client.get("/v1/sagas/\(id)/history?after=\(after)&limit=1000")
            guard case .array(let entries)? = page.value(at: ["entries"]), !entries.isEmpty else { break }
            for entry in entries {
                if case .integer(let seq)? = entry.value(at: ["seq"]) { after = Int(seq) }
                if server.json {
                    print(entry.canonicalJSON)
                    continue
                }
                var step = Table.text(entry.value(at: ["step"]))
                if let direction = entry.value(at: ["direction"])?.stringValue, direction == "compensation" { step += " (undo)" }
                let before = Table.text(entry.value(at: ["status_before"]))
                let statusAfter = Table.text(entry.value(at: ["status_after"]))
                rows.append([
                    Table.text(entry.value(at: ["seq"])), Table.text(entry.value(at: ["at"])), Table.text(entry.value(at: ["kind"])), step,
                    before == statusAfter ? statusAfter : "\(before) → \(statusAfter)", Table.text(entry.value(at: ["actor"])),
                    Table.text(entry.value(at: ["detail"])),
                ])
            }
            if entries.count < 1000 { break }
        }
        if !server.json { Table.print(rows) }
    }
}
