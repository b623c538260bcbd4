import Crypto
import Foundation

extension WorkflowDefinition {
    /// The SHA-256 (hex) of the definition's canonical JSON form.
    ///
    /// The hash is taken over the parsed definition with every default filled in and keys sorted, so
    /// formatting, comments, key order, YAML versus JSON, and writing a default out or leaving it
    /// implied do not change it; any change in meaning does. A saga stores this hash to pin exactly
    /// what it ran.
    public var contentHash: String {
        SHA256.hash(data: canonicalJSON).map { String(format: "%02x", $0) }.joined()
    }

    /// The definition as compact JSON with sorted keys: the form that is hashed and stored.
    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every field is a string, number, bool or nested value of those: encoding cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }
}
