import ArgumentParser
import BatonClient
import BatonCore
import Foundation

/// Options every client command shares: where the server is and how to authenticate.
struct ServerOptions: ParsableArguments {
    @Option(help: "The Baton server. Env: BATON_URL (default http://127.0.0.1:8080).")
    var server: String?

    @Option(help: "API token, sent as a bearer token. Env: BATON_TOKEN.")
    var token: String?

    @Flag(help: "Print the server's JSON instead of a table.")
    var json = false

    var client: BatonClient {
        get throws {
            let environment = ProcessInfo.processInfo.environment
            let base = server ?? environment["BATON_URL"] ?? "http://127.0.0.1:8080"
            let origin = server != nil ? "--server" : environment["BATON_URL"] != nil ? "BATON_URL" : "the default"
            guard let url = URL(string: base), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ValidationError(
                    "\(origin) '\(base)' is not a server URL: give the scheme and host, as in http://\(base.contains("://") ? "127.0.0.1:8080" : base)"
                )
            }
            return BatonClient(base: base, token: token ?? environment["BATON_TOKEN"])
        }
    }
}

/// Colour for people at a terminal: statuses in their colour (the word is always there too). Off
/// when standard output is not a terminal, and when `NO_COLOR` is set (no-color.org).
enum Style {
    static let enabled: Bool = {
        let noColor = ProcessInfo.processInfo.environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        return isatty(STDOUT_FILENO) == 1 && !noColor
    }()

    static func status(_ text: String) -> String {
        guard enabled else { return text }
        let code: String =
            switch text {
            case "COMPLETED", "SUCCEEDED", "COMPENSATED": "32"
            case "FAILED", "TIMED_OUT": "31"
            case "SUSPENDED", "CANCELLED": "33"
            case "COMPENSATING": "35"
            case "PROCESSING", "RUNNING", "PENDING": "36"
            default: ""
            }
        return code.isEmpty ? text : "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    /// Something that needs attention, in yellow.
    static func warning(_ text: String) -> String { enabled ? "\u{1B}[33m\(text)\u{1B}[0m" : text }

    /// The characters a terminal shows (colour codes take no room).
    static func visibleCount(_ text: String) -> Int {
        var count = 0
        var inEscape = false
        for character in text {
            if character == "\u{1B}" {
                inEscape = true
            } else if inEscape {
                if character == "m" { inEscape = false }
            } else {
                count += 1
            }
        }
        return count
    }
}

/// Plain-text rendering of API values for people.
enum Table {
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let text)?: text
        case .integer(let number)?: String(number)
        case .null?, nil: "-"
        case let other?: other.canonicalJSON
        }
    }

    static func print(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        let widths = first.indices.map { column in rows.map { Style.visibleCount($0[column]) }.max() ?? 0 }
        for row in rows {
            Swift.print(
                row.enumerated().map { index, cell in cell + String(repeating: " ", count: widths[index] - Style.visibleCount(cell)) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        // Written out at once, as `print` in this module is (Baton.swift).
        fflush(nil)
    }

    /// "reason (by caller, at time)" for a saga that accepted a cancel, else `nil`.
    static func cancellation(of saga: JSONValue) -> String? {
        guard let cancellation = saga.value(at: ["cancellation"]), cancellation != .null else { return nil }
        var asked: [String] = []
        if let caller = cancellation.value(at: ["requested_by"]), caller != .null { asked.append("by \(text(caller))") }
        asked.append("at \(text(cancellation.value(at: ["at"])))")
        return "\(text(cancellation.value(at: ["reason"]))) (\(asked.joined(separator: ", ")))"
    }

    static func saga(_ saga: JSONValue) {
        Swift.print("saga      \(text(saga.value(at: ["id"])))")
        Swift.print("workflow  \(text(saga.value(at: ["workflow"]))) v\(text(saga.value(at: ["version"])))")
        Swift.print("status    \(Style.status(text(saga.value(at: ["status"]))))")
        if let reason = saga.value(at: ["suspension_reason"]), reason != .null { Swift.print("suspended \(text(reason))") }
        if let error = saga.value(at: ["last_error"]), error != .null { Swift.print("error     \(text(error))") }
        if let note = cancellation(of: saga) { Swift.print("cancelled \(note)") }
        for warning in saga.value(at: ["warnings"])?.arrayValue ?? [] { Swift.print(Style.warning("warning   \(text(warning))")) }
        if let parent = saga.value(at: ["parent"]), parent != .null {
            Swift.print("parent    \(text(parent.value(at: ["saga_id"]))) (its step \(text(parent.value(at: ["step"]))))")
        }
        Swift.print("")
        var rows = [["STEP", "STATUS", "ATTEMPT", "COMPENSATION", "ERROR"]]
        if case .array(let steps)? = saga.value(at: ["steps"]) {
            for step in steps {
                rows.append([
                    text(step.value(at: ["name"])), Style.status(text(step.value(at: ["status"]))), text(step.value(at: ["attempt"])),
                    text(step.value(at: ["compensation_attempt"])), text(step.value(at: ["error", "code"])),
                ])
            }
        }
        print(rows)
        // The signals it received: consumed by a step, or kept until their step waits.
        if case .array(let signals)? = saga.value(at: ["signals"]), !signals.isEmpty {
            Swift.print("")
            var signalRows = [["SIGNAL", "OUTCOME", "FROM", "CONSUMED BY"]]
            for signal in signals {
                let outcome = signal.value(at: ["failed"]).map { "failed \(text($0.value(at: ["code"])))" } ?? "payload"
                let consumer = signal.value(at: ["consumed_by"]).flatMap(\.stringValue) ?? "(kept until its step waits)"
                signalRows.append([text(signal.value(at: ["name"])), outcome, text(signal.value(at: ["sent_by"])), consumer])
            }
            print(signalRows)
        }
        // The child sagas its steps started.
        if case .array(let children)? = saga.value(at: ["children"]), !children.isEmpty {
            Swift.print("")
            var childRows = [["CHILD", "STEP", "WORKFLOW", "STATUS"]]
            for child in children {
                childRows.append([
                    text(child.value(at: ["saga_id"])), text(child.value(at: ["step"])),
                    "\(text(child.value(at: ["workflow"]))) v\(text(child.value(at: ["version"])))", text(child.value(at: ["status"])),
                ])
            }
            print(childRows)
        }
    }
}

/// A JSON command-line argument: the text itself, or `@FILE` for a file's contents.
enum JSONArgument {
    static func parse(_ text: String, option: String) throws -> JSONValue {
        var source = text
        if text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("\(option) @\(path): the file cannot be read (does it exist?)")
            }
            source = contents
        }
        guard let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(source.utf8)) else {
            throw ValidationError("\(option) is not valid JSON")
        }
        return parsed
    }
}
