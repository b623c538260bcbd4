import Foundation

/// A length of time in a workflow definition (`250ms`, `30s`, `5m`, `1h30m`, `2d`), held in
/// milliseconds.
///
/// Definitions use text with units because a bare number is ambiguous (seconds? milliseconds?);
/// a number without a unit is rejected with a message that says so.
public struct SagaDuration: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The length in milliseconds; never negative.
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = max(0, milliseconds) }
    public static func seconds(_ seconds: Int64) -> SagaDuration { .init(milliseconds: seconds * 1000) }
    public static func minutes(_ minutes: Int64) -> SagaDuration { .init(milliseconds: minutes * 60_000) }
    public static let zero = SagaDuration(milliseconds: 0)

    /// Parses text such as `500ms`, `30s`, `1h30m` or `1.5s`.
    /// - Returns: `nil` when the text is not a duration.
    public init?(parsing text: String) {
        let units: [(suffix: String, milliseconds: Double)] = [
            ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
        ]
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !digits.isEmpty, let amount = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { $0.isLetter })
            guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += amount * unit.milliseconds
        }
        guard total.isFinite, total < Double(Int64.max / 2) else { return nil }
        self.milliseconds = Int64(total.rounded())
    }

    /// The shortest exact text for this duration (`90s` prints as `1m30s`).
    public var description: String {
        if milliseconds == 0 { return "0s" }
        var rest = milliseconds
        var text = ""
        for (suffix, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            let count = rest / size
            if count > 0 {
                text += "\(count)\(suffix)"
                rest -= count * size
            }
        }
        return text
    }

    public static func < (lhs: SagaDuration, rhs: SagaDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let parsed = SagaDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad duration '\(text)'")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension String {
    func trimmingWhitespace() -> Substring {
        let start = firstIndex(where: { !$0.isWhitespace }) ?? endIndex
        let end = lastIndex(where: { !$0.isWhitespace }).map { index(after: $0) } ?? start
        return self[start..<max(start, end)]
    }
}

extension Date {
    /// The time `duration` after `date`.
    public static func + (date: Date, duration: SagaDuration) -> Date {
        date.addingTimeInterval(Double(duration.milliseconds) / 1000)
    }

    /// The time `duration` before `date`.
    public static func - (date: Date, duration: SagaDuration) -> Date {
        date.addingTimeInterval(-Double(duration.milliseconds) / 1000)
    }
}
