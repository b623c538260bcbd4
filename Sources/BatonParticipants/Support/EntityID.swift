import Foundation

/// The ids the demo's services give what they create: a kind prefix and random hex digits
/// (`pay_3f9c…`, `txn_…`), readable in logs and safe in URLs.
enum EntityID {
    static func make(_ prefix: String, digits: Int = 20) -> String {
        prefix + "_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(digits)
    }
}
