/// How the simulated world misbehaves: per participant, how often each kind of answer comes back,
/// and per saga, how often it is cancelled or runs into its deadline.
///
/// Written on the command line as `[PARTICIPANT:]KIND=RATE[,KIND=RATE…]`: `ledger:timeout=0.2`,
/// `fail=0,retry=0.3` (every participant), `cancel=0.1`. A signal step's "participant" is its
/// signal's name, a child step's the child's workflow.
public struct SimulationFaults: Sendable, Hashable {
    /// The probability of each answer to one command (an attempt of an action or a compensation).
    /// Whatever is left over answers `succeeded` at once.
    public struct Rates: Sendable, Hashable {
        /// An action answers `failed` (a business failure).
        public var fail = 0.10
        /// It answers `retry` with no delay asked.
        public var retry = 0.05
        /// It answers `retry` with a `retry_after`.
        public var retryAfter = 0.03
        /// No answer ever comes: the attempt times out.
        public var timeout = 0.04
        /// The answer (`succeeded`) comes after the attempt timed out.
        public var late = 0.03
        /// The answer comes twice (a redelivered command answered again).
        public var duplicate = 0.05
        /// `in_progress` first, then `succeeded` after the first timeout would have passed.
        public var heartbeat = 0.05
        /// A compensation answers `failed` (a participant that breaks the protocol).
        public var compensationFail = 0.0
        /// A signal arrives before its step waits for it.
        public var early = 0.25

        public init() {}

        /// A participant that always answers `succeeded` at once.
        public static let none: Rates = {
            var rates = Rates()
            for kind in Kind.allCases { rates[kind] = 0 }
            return rates
        }()

        public subscript(kind: Kind) -> Double {
            get {
                switch kind {
                case .fail: fail
                case .retry: retry
                case .retryAfter: retryAfter
                case .timeout: timeout
                case .late: late
                case .duplicate: duplicate
                case .heartbeat: heartbeat
                case .compensationFail: compensationFail
                case .early: early
                }
            }
            set {
                switch kind {
                case .fail: fail = newValue
                case .retry: retry = newValue
                case .retryAfter: retryAfter = newValue
                case .timeout: timeout = newValue
                case .late: late = newValue
                case .duplicate: duplicate = newValue
                case .heartbeat: heartbeat = newValue
                case .compensationFail: compensationFail = newValue
                case .early: early = newValue
                }
            }
        }

        /// The kinds that share one draw per command (`early` and `compensation-fail` are drawn
        /// on their own).
        static let answerKinds: [Kind] = [.fail, .retry, .retryAfter, .timeout, .late, .duplicate, .heartbeat]
    }

    /// A kind of misbehaviour, as written on the command line.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case fail
        case retry
        case retryAfter = "retry-after"
        case timeout
        case late
        case duplicate
        case heartbeat
        case compensationFail = "compensation-fail"
        case early
    }

    /// The rates of participants not named in ``participants``.
    public var defaults = Rates()
    public var participants: [String: Rates] = [:]
    /// The probability that a saga is cancelled at some point of its run.
    public var cancel = 0.05
    /// The probability that a saga runs into its deadline at some point of its run (when its
    /// workflow has one).
    public var deadline = 0.05

    public init() {}

    public func rates(for participant: String) -> Rates { participants[participant] ?? defaults }

    /// A bad `--faults` value, with what is wrong.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var text: String
        public var reason: String
        public var description: String { "bad setting '\(text)': \(reason)" }
    }

    /// The defaults changed by each setting in turn (`[PARTICIPANT:]KIND=RATE[,KIND=RATE…]`).
    public static func parse(_ settings: [String]) throws(ParseError) -> SimulationFaults {
        var faults = SimulationFaults()
        for setting in settings {
            guard setting.utf8.count <= 4096 else { throw ParseError(text: String(setting.prefix(40)), reason: "longer than 4096 bytes") }
            var participant: String?
            var assignments = Substring(setting)
            if let colon = setting.firstIndex(of: ":") {
                let name = setting[..<colon]
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
                    throw ParseError(text: setting, reason: "a participant name is letters, digits, '-', '_' and '.'")
                }
                participant = String(name)
                assignments = setting[setting.index(after: colon)...]
            }
            var rates = participant.map { faults.participants[$0] ?? faults.defaults } ?? faults.defaults
            var named: Set<Kind> = []
            for assignment in assignments.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let rate = Double(parts[1]), rate.isFinite, (0...1).contains(rate) else {
                    throw ParseError(text: String(assignment), reason: "expected KIND=RATE with a rate from 0 to 1")
                }
                let name = String(parts[0])
                if participant == nil, name == "cancel" || name == "deadline" {
                    if name == "cancel" { faults.cancel = rate } else { faults.deadline = rate }
                    continue
                }
                guard let kind = Kind(rawValue: name) else {
                    let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ParseError(text: String(assignment), reason: "the kinds are \(kinds), and (for every saga) cancel, deadline")
                }
                rates[kind] = rate
                named.insert(kind)
            }
            // The kinds a setting names win: when the answers' rates add up to more than 1, the
            // others shrink in proportion to make room (`ledger:fail=1` means every answer fails).
            let chosen = Rates.answerKinds.filter(named.contains).reduce(0) { $0 + rates[$1] }
            guard chosen <= 1 + 1e-9 else {
                throw ParseError(
                    text: setting, reason: "the rates of \(Rates.answerKinds.map(\.rawValue).joined(separator: ", ")) add up to more than 1"
                )
            }
            let others = Rates.answerKinds.filter { !named.contains($0) }
            let rest = others.reduce(0) { $0 + rates[$1] }
            if chosen + rest > 1 {
                for kind in others { rates[kind] *= max(0, 1 - chosen) / rest }
            }
            if let participant { faults.participants[participant] = rates } else { faults.defaults = rates }
        }
        return faults
    }

    /// The settings as they would be written, for reports: every kind for the defaults and for each
    /// participant named.
    public var settings: [String: [String: Double]] {
        func written(_ rates: Rates) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: Kind.allCases.map { ($0.rawValue, rates[$0]) })
        }
        var settings = ["*": written(defaults), "saga": ["cancel": cancel, "deadline": deadline]]
        for (name, rates) in participants { settings[name] = written(rates) }
        return settings
    }
}
