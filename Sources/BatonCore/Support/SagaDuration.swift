import Foundation

/// A length of time in a workflow definition (`250ms`, `30s`, `5m`, `1h30m`, `2d`), held in
/// milliseconds.
///
/// Definitions use text with units because a bare number is ambiguous (seconds? milliseconds?);
/// a number without a unit is rejected with a message that says so.
///
/// Every duration is at most ``maximum`` (365 days). Durations come from outside (definitions, query
/// filters, `retry_after` in replies), and a time that far ahead is never meant: it is refused
/// where it is read, so no date computed from one can leave the range the database stores.
public struct SagaDuration: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The length in milliseconds, from 0 to ``maximum``.
    public var milliseconds: Int64

    /// The longest duration Baton accepts anywhere: 365 days.
    public static let maximum = SagaDuration(clamping: 365 * 86_400_000)

    /// A duration of `milliseconds`, clamped to `0...maximum`.
    public init(milliseconds: Int64) { self.init(clamping: milliseconds) }
    private init(clamping milliseconds: Int64) { self.milliseconds = min(max(0, milliseconds), 365 * 86_400_000) }
    /// `seconds` seconds, clamped to `0...maximum` (it never overflows).
    public static func seconds(_ seconds: Int64) -> SagaDuration { scaled(seconds, by: 1000) }
    /// `minutes` minutes, clamped to `0...maximum` (it never overflows).
    public static func minutes(_ minutes: Int64) -> SagaDuration { scaled(minutes, by: 60_000) }
    public static let zero = SagaDuration(milliseconds: 0)

    private static func scaled(_ count: Int64, by factor: Int64) -> SagaDuration {
        let (product, overflow) = count.multipliedReportingOverflow(by: factor)
        return SagaDuration(milliseconds: overflow ? (count < 0 ? 0 : .max) : product)
    }

    /// Why a text is not a duration.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// Not a number with a unit.
        case malformed
        /// Longer than ``SagaDuration/maximum``.
        case tooLong

        public var description: String {
            switch self {
            case .malformed: "write a number with a unit (ms, s, m, h, d), e.g. 30s or 1m30s"
            case .tooLong: "longer than the maximum of \(SagaDuration.maximum)"
            }
        }
    }

    /// Parses text such as `500ms`, `30s`, `1h30m` or `1.5s`.
    /// - Returns: `nil` when the text is not a duration or is longer than ``maximum``.
    public init?(parsing text: String) {
        guard let parsed = try? Self.parse(text) else { return nil }
        self = parsed
    }

    /// Parses text such as `500ms`, `30s`, `1h30m` or `1.5s`.
    /// - Throws: ``ParseError``: malformed, or longer than ``maximum``.
    public static func parse(_ text: String) throws(ParseError) -> SagaDuration {
        let units: [(suffix: String, milliseconds: Double)] = [
            ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
        ]
        // Longer text is no duration anyone writes; bounding it bounds the work below.
        guard text.utf8.count <= 64 else { throw .malformed }
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { throw .malformed }
        var total = 0.0
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
            guard !digits.isEmpty, let amount = Double(digits), amount.isFinite else { throw .malformed }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { $0.isLetter })
            guard let unit = units.first(where: { $0.suffix == unitText }) else { throw .malformed }
            rest = rest.dropFirst(unitText.count)
            total += amount * unit.milliseconds
        }
        guard total.isFinite else { throw .tooLong }
        guard total.rounded() <= Double(maximum.milliseconds) else { throw .tooLong }
        return SagaDuration(milliseconds: Int64(total.rounded()))
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
        do {
            self = try SagaDuration.parse(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad duration '\(text)': \(error)")
        }
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
    /// The latest time Baton computes: later results saturate here. PostgreSQL stores it, and its
    /// microseconds since the epoch fit an `Int64` many times over.
    public static let latestStorable = Date.distantFuture
    /// The earliest time Baton computes: earlier results saturate here.
    public static let earliestStorable = Date.distantPast

    /// The time `duration` after `date`, at most ``latestStorable``.
    public static func + (date: Date, duration: SagaDuration) -> Date {
        min(date.addingTimeInterval(Double(duration.milliseconds) / 1000), latestStorable)
    }

    /// The time `duration` before `date`, at least ``earliestStorable``.
    public static func - (date: Date, duration: SagaDuration) -> Date {
        max(date.addingTimeInterval(-Double(duration.milliseconds) / 1000), earliestStorable)
    }
}
