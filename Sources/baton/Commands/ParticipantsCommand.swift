import ArgumentParser
import BatonClient
import BatonCore
import Foundation

/// `baton participants`: who the workflows command, and whether anyone works for them.
struct ParticipantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "participants", abstract: "List the participants the workflows command, their consumers and whether a worker is seen.",
        discussion: """
            WORKERS is yes while a worker pulls or works on a command, none when none was seen in the last 10 s (its \
            steps wait until one starts), and ? while the server cannot tell yet.
            """)
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let listed = try await server.client.get("/v1/participants")
        if server.json {
            print(listed.canonicalJSON)
            return
        }
        var rows = [["PARTICIPANT", "WORKERS", "CONSUMER", "PENDING", "UNACKED", "LAST DELIVERY", "ACTIONS"]]
        for participant in listed.value(at: ["participants"])?.arrayValue ?? [] {
            let workers: String =
                switch participant.value(at: ["workers"]) {
                case .bool(true)?: Style.status("yes")
                case .bool(false)?: Style.warning("none")
                default: "?"
                }
            rows.append([
                Table.text(participant.value(at: ["name"])), workers,
                participant.value(at: ["consumer"]) == .bool(true) ? "yes" : Style.warning("none"),
                Table.text(participant.value(at: ["pending"])), Table.text(participant.value(at: ["unacknowledged"])),
                Table.text(participant.value(at: ["last_delivery"])),
                (participant.value(at: ["actions"])?.arrayValue ?? []).map { Table.text($0) }.joined(separator: ","),
            ])
        }
        Table.print(rows)
        if let problem = listed.value(at: ["problem"])?.stringValue { print("cannot read NATS: \(problem)") }
    }
}
