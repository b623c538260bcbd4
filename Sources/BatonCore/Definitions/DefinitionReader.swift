/// Reads one mapping of a definition strictly: every key must be known (a typo is an error that
/// suggests the nearest known key), every value must have the expected type, and every problem is
/// logged rather than only the first.
struct DefinitionReader {
    private let members: [String: JSONValue]
    private let path: String
    private let step: String?
    private let log: DefinitionIssueLog

    /// - Returns: `nil` (after logging why) when `value` is not a mapping.
    init?(_ value: JSONValue, path: String, step: String?, allowedKeys: [String], log: DefinitionIssueLog) {
        self.path = path
        self.step = step
        self.log = log
        guard case .object(let members) = value else {
            log.add(step: step, field: path.isEmpty ? "(document)" : path, "must be a mapping, not \(value.typeName)")
            return nil
        }
        self.members = members
        for key in members.keys.sorted() where !allowedKeys.contains(key) {
            let key = key.count > 64 ? "\(key.prefix(64))…" : key
            let suggestion = Self.nearest(to: key, in: allowedKeys).map { "; did you mean '\($0)'?" } ?? ""
            log.add(
                step: step,
                field: field(key),
                "unknown key\(suggestion) (allowed: \(allowedKeys.joined(separator: ", ")))"
            )
        }
    }

    var limits: DefinitionLimits { log.limits }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { members[key] != nil && members[key] != .null }

    func raw(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func string(_ key: String, required: Bool = false) -> String? {
        guard let value = present(key, required: required) else { return nil }
        guard case .string(let text) = value else {
            return mistyped(key, value, expected: "a string")
        }
        return text
    }

    /// A name used in subjects and message ids: letters, digits, `-` and `_`, starting with a letter
    /// or digit.
    func identifier(_ key: String, required: Bool = true) -> String? {
        guard let text = string(key, required: required) else { return nil }
        guard text.count <= log.limits.maximumNameLength else {
            log.add(step: step, field: field(key), "is \(text.count) characters long; at most \(log.limits.maximumNameLength) are allowed")
            return nil
        }
        guard Self.isIdentifier(text) else {
            log.add(
                step: step,
                field: field(key),
                "'\(text)' may only hold letters, digits, '-' and '_', and must start with a letter or digit"
            )
            return nil
        }
        return text
    }

    func integer(_ key: String, required: Bool = false) -> Int? {
        guard let value = present(key, required: required) else { return nil }
        switch value {
        case .integer(let number) where number >= Int64(Int.min) && number <= Int64(Int.max):
            return Int(number)
        default:
            return mistyped(key, value, expected: "a whole number")
        }
    }

    func number(_ key: String) -> Double? {
        guard let value = present(key, required: false) else { return nil }
        switch value {
        case .integer(let number): return Double(number)
        case .number(let number): return number
        default: return mistyped(key, value, expected: "a number")
        }
    }

    func bool(_ key: String) -> Bool? {
        guard let value = present(key, required: false) else { return nil }
        guard case .bool(let flag) = value else { return mistyped(key, value, expected: "true or false") }
        return flag
    }

    func duration(_ key: String) -> SagaDuration? {
        guard let value = present(key, required: false) else { return nil }
        let shown = value.stringValue ?? value.canonicalJSON
        guard case .string(let text) = value else {
            log.add(step: step, field: field(key), "bad duration '\(shown.prefix(64))': \(SagaDuration.ParseError.malformed)")
            return nil
        }
        do {
            return try SagaDuration.parse(text)
        } catch {
            log.add(step: step, field: field(key), "bad duration '\(shown.prefix(64))': \(error)")
            return nil
        }
    }

    func array(_ key: String, required: Bool = false) -> [JSONValue]? {
        guard let value = present(key, required: required) else { return nil }
        guard case .array(let elements) = value else { return mistyped(key, value, expected: "a list") }
        return elements
    }

    func issue(_ key: String, _ message: String) {
        log.add(step: step, field: field(key), message)
    }

    private func present(_ key: String, required: Bool) -> JSONValue? {
        guard let value = members[key], value != .null else {
            if required { log.add(step: step, field: field(key), "is required") }
            return nil
        }
        return value
    }

    private func mistyped<T>(_ key: String, _ value: JSONValue, expected: String) -> T? {
        log.add(step: step, field: field(key), "must be \(expected), not \(value.typeName)")
        return nil
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCIIAlphanumeric else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "-" || $0 == "_" }
    }

    /// The allowed key closest to a misspelt one, when it is close enough to be a typo.
    static func nearest(to key: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(key.lowercased(), $0)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, key.count / 3) else { return nil }
        return best.0
    }

    /// The Levenshtein distance: how many single-character edits turn one string into the other.
    static func editDistance(_ lhs: String, _ rhs: String) -> Int {
        let a = Array(lhs)
        let b = Array(rhs)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Collects the issues found while reading and validating one definition.
final class DefinitionIssueLog {
    private(set) var issues: [DefinitionIssue] = []
    /// The bounds the definition being read must keep.
    let limits: DefinitionLimits

    init(limits: DefinitionLimits) { self.limits = limits }

    func add(step: String?, field: String, _ message: String) {
        issues.append(DefinitionIssue(step: step, field: field, message: message))
    }

    func add(_ issues: [DefinitionIssue]) { self.issues += issues }
}

extension Unicode.Scalar {
    fileprivate var isASCIIAlphanumeric: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self)
    }
}
