import BatonCore
import BatonStore
import Foundation

/// How long finished sagas are kept, for every workflow and for some by name, and where removed
/// sagas are archived. Written as `30d` or `30d,funds-transfer=365d,greet=1h,audit=forever`
/// (`BATON_RETENTION`; `docs/operations.md`, Retention).
public struct RetentionPolicy: Sendable, Equatable {
    /// How long a finished saga is kept after it finished.
    public enum Keep: Sendable, Equatable, CustomStringConvertible {
        case forever
        case after(SagaDuration)

        public var description: String {
            switch self {
            case .forever: "forever"
            case .after(let age): "\(age)"
            }
        }
    }

    /// For every workflow without a rule of its own.
    public var standard: Keep = .forever
    /// By workflow name.
    public var workflows: [String: Keep] = [:]
    /// Where removed sagas are written first (JSON Lines), or `nil` to remove them outright.
    public var archive: URL?
    /// Sagas removed per transaction.
    public var batchSize = 500
    /// How often a sweep starts when the last one found nothing more to remove.
    public var interval: Duration = .seconds(60)
    /// The longest message records (inbox and published outbox rows) are kept when retention is
    /// on: they only catch redeliveries, which come within minutes.
    public static let messageAgeLimit = SagaDuration(milliseconds: 7 * 86_400_000)

    public init(standard: Keep = .forever, workflows: [String: Keep] = [:]) {
        self.standard = standard
        self.workflows = workflows
    }

    /// Whether anything is ever removed.
    public var isActive: Bool { standard != .forever || workflows.values.contains { $0 != .forever } }

    /// How long inbox and published outbox rows are kept: no longer than the shortest age any rule
    /// keeps a saga (so a saga's message records go no later than the saga), and at most
    /// ``messageAgeLimit``; `nil` when retention is off.
    public var messageAge: SagaDuration? {
        guard isActive else { return nil }
        let ages = ([standard] + Array(workflows.values)).compactMap { keep -> SagaDuration? in
            if case .after(let age) = keep { age } else { nil }
        }
        return min(ages.min() ?? Self.messageAgeLimit, Self.messageAgeLimit)
    }

    /// Why a retention text cannot be read.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads `30d`, `forever`, or rules separated by commas: one without a name (every other
    /// workflow) and any number of `workflow=age`.
    public init(parsing text: String) throws(ParseError) {
        self.init()
        var seenStandard = false
        for rule in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard !rule.isEmpty else { throw ParseError(description: "an empty rule in '\(text.prefix(200))'") }
            let parts = rule.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let keep = try Self.keep(parts.count == 2 ? parts[1] : parts[0])
            if parts.count == 2 {
                let name = parts[0].trimmingCharacters(in: .whitespaces)
                guard WorkflowDefinition.isName(name) else {
                    throw ParseError(description: "'\(name.prefix(80))' is not a workflow name (in '\(rule.prefix(200))')")
                }
                guard workflows.updateValue(keep, forKey: name) == nil else {
                    throw ParseError(description: "workflow \(name) has two rules")
                }
            } else {
                guard !seenStandard else { throw ParseError(description: "two rules without a workflow name: give one age for all") }
                seenStandard = true
                standard = keep
            }
        }
    }

    private static func keep(_ text: String) throws(ParseError) -> Keep {
        let value = text.trimmingCharacters(in: .whitespaces)
        if value == "forever" { return .forever }
        do {
            let age = try SagaDuration.parse(value)
            guard age.milliseconds >= 60_000 else {
                throw ParseError(description: "an age of \(value) is shorter than a minute: write at least 1m, or forever")
            }
            return .after(age)
        } catch let error as SagaDuration.ParseError {
            throw ParseError(description: "'\(value.prefix(80))' is not an age: \(error.description), or forever")
        } catch let error as ParseError {
            throw error
        } catch {
            throw ParseError(description: "'\(value.prefix(80))' is not an age")
        }
    }

    /// One sweep's work: each rule with its cutoff and the sagas it covers. Named workflows come
    /// first; the standard rule covers every workflow without a rule of its own.
    func rules(now: Date) -> [(scope: RetentionScope, cutoff: Date)] {
        var rules: [(scope: RetentionScope, cutoff: Date)] = []
        for (name, keep) in workflows.sorted(by: { $0.key < $1.key }) {
            if case .after(let age) = keep { rules.append((.workflow(name), Self.cutoff(now, age))) }
        }
        if case .after(let age) = standard { rules.append((.allExcept(workflows.keys.sorted()), Self.cutoff(now, age))) }
        return rules
    }

    static func cutoff(_ now: Date, _ age: SagaDuration) -> Date {
        now.addingTimeInterval(-Double(age.milliseconds) / 1000)
    }
}

extension RetentionPolicy: CustomStringConvertible {
    public var description: String {
        var rules = ["\(standard)"]
        rules += workflows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return rules.joined(separator: ",")
    }
}
