import Foundation

/// Saga identifiers: UUID version 7 (RFC 9562), written in lowercase.
///
/// A version 7 UUID starts with its creation time in milliseconds, so ids sort roughly by creation
/// and new rows land at the right edge of the primary-key index instead of at random pages, which
/// keeps inserts cheap when the table holds millions of sagas. Lowercase because PostgreSQL prints
/// UUIDs that way, and the id is part of every command's message id.
public enum SagaID {
    /// A new id for a saga created at `now`.
    public static func make(now: Date, random: inout some RandomNumberGenerator) -> String {
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let randomA = random.next() as UInt64
        let randomB = random.next() as UInt64
        // 48 bits of time, the version nibble 7, 12 random bits.
        let high = (milliseconds << 16) | 0x7000 | (randomA & 0x0FFF)
        // The variant bits 10, then 62 random bits.
        let low = 0x8000_0000_0000_0000 | (randomB & 0x3FFF_FFFF_FFFF_FFFF)
        let hex = String(format: "%016llx%016llx", high, low)
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }

    /// Whether `text` is a UUID in the canonical lowercase form this type produces.
    public static func isValid(_ text: String) -> Bool {
        guard text.count == 36, let uuid = UUID(uuidString: text) else { return false }
        return uuid.uuidString.lowercased() == text
    }
}
