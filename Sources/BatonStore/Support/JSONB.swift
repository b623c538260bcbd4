import Foundation
import PostgresNIO

/// A value bound to, or read from, a `jsonb` parameter or column.
///
/// PostgresNIO encodes any `Encodable & PostgresEncodable` as `jsonb`; this wrapper gives that to
/// any Codable value without declaring Baton's core types PostgreSQL-aware.
struct JSONB<Value: Codable & Sendable>: Codable, Sendable, PostgresCodable {
    var value: Value

    init(_ value: Value) { self.value = value }

    init(from decoder: any Decoder) throws { value = try Value(from: decoder) }

    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

extension Date {
    /// Microseconds since the Unix epoch: how timestamps travel inside JSON row sets (decoded by
    /// `baton.from_epoch_us`), exact where a floating-point seconds value would round. Saturates
    /// at ``Date/earliestStorable`` and ``Date/latestStorable`` rather than trap.
    var epochMicroseconds: Int64 {
        let clamped = min(max(self, .earliestStorable), .latestStorable)
        return Int64((clamped.timeIntervalSince1970 * 1_000_000).rounded())
    }

    init(epochMicroseconds: Int64) {
        self.init(timeIntervalSince1970: Double(epochMicroseconds) / 1_000_000)
    }
}
