import BatonCore
import BatonHTTP
import Foundation

/// How the console writes values: times (UTC in the page, the reader's zone once its script runs),
/// statuses with a symbol as well as a colour, durations and JSON for people.
enum ConsoleFormat {
    static let isoStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// A `time` element's values: the exact moment, and UTC to read.
    static func time(_ date: Date?) -> [String: String]? {
        guard let date else { return nil }
        let iso = date.formatted(isoStyle)
        let utc = iso.replacingOccurrences(of: "T", with: " ").replacingOccurrences(
            of: #"\.\d+Z$"#, with: " UTC", options: .regularExpression)
        return ["iso": iso, "utc": utc]
    }

    /// A time typed into a filter: a `datetime-local` value (taken as UTC) or RFC 3339.
    static func parseTime(_ text: String, field: String) throws -> Date {
        let candidates = [text, text + "Z", text + ":00Z"]
        for candidate in candidates {
            if let date = try? Date.ISO8601FormatStyle().parse(candidate) { return date }
            if let date = try? isoStyle.parse(candidate) { return date }
        }
        throw APIProblem.badRequest("\(field) must be a time such as 2026-11-21T14:00 (UTC), got '\(text.prefix(40))'")
    }

    /// A status badge's values: the status and its symbol (never told by colour alone).
    static func badge(_ status: String) -> [String: Any] { ["status": status, "icon": icon(status)] }

    static func icon(_ status: String) -> String {
        switch status {
        case "PENDING": "…"
        case "PROCESSING", "RUNNING": "▶"
        case "COMPLETED", "SUCCEEDED": "✓"
        case "COMPENSATING": "↺"
        case "COMPENSATED": "↺"
        case "FAILED": "✗"
        case "TIMED_OUT": "◔"
        case "SUSPENDED": "⚠"
        case "CANCELLED": "⊘"
        case "SKIPPED": "»"
        default: "•"
        }
    }

    static func symbol(_ outcome: SagaTimeline.Outcome) -> String {
        switch outcome {
        case .running: "▶"
        case .succeeded: "✓"
        case .failed: "✗"
        case .timedOut: "◔"
        case .compensated: "↺"
        case .interrupted: "■"
        }
    }

    static func symbol(_ kind: HistoryEntry.Kind) -> String {
        switch kind {
        case .heartbeat: "♥"
        case .signalReceived: "✉"
        case .signalRefused: "⊘"
        case .retryScheduled: "↻"
        case .stepSkipped: "»"
        default: "•"
        }
    }

    /// What a step does, in words.
    static func kind(of step: StepDefinition) -> String {
        if let signal = step.signal { return "waits for signal \(signal)" }
        if let workflow = step.workflow { return "starts a \(workflow) saga" }
        return "\(step.participant).\(step.action)"
    }

    /// `1.25 s`, `3 min 20 s`, `2 h 5 min`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "-" }
        if seconds < 1 { return "\(Int(seconds * 1000)) ms" }
        if seconds < 60 { return String(format: "%.2f s", seconds) }
        let whole = Int(seconds)
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    static func percent(_ value: Double) -> String { String(format: "%.3f", value) }

    /// JSON indented, keys sorted.
    static func pretty(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return value.canonicalJSON }
        return String(decoding: data, as: UTF8.self)
    }

    /// The text indented, when it is a JSON object or array.
    static func prettyIfJSON(_ text: String) -> String? {
        guard let first = text.first, first == "{" || first == "[",
            let value = try? JSONParser.parse(text, largeIntegers: .readAsDouble)
        else { return nil }
        return pretty(value)
    }

    /// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
    static func traceID(_ traceparent: String?) -> String? {
        guard let parts = traceparent?.split(separator: "-"), parts.count == 4, parts[1].count == 32 else { return nil }
        return String(parts[1])
    }

    /// A query string of name and value pairs, each percent-encoded.
    static func query(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return pairs.map { name, value in "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            .joined(separator: "&")
    }
}
