/// What a simulation found: the end states it reached, the promises it checked, any it saw broken,
/// and the findings, as a table for people (``text``) and as JSON for CI (``json``).
public struct SimulationReport: Sendable {
    /// One end state, how often runs reached it, and a shortest run that did.
    public struct EndState: Sendable, KeepsShortestRun {
        public var description: String
        public var status: SagaStatus
        public var runs: Int
        public var run: Int
        public var input: JSONValue
        public var schedule: [String]
    }

    /// One promise broken: in how many runs, and a shortest run that broke it.
    public struct Violation: Sendable, KeepsShortestRun {
        public var invariant: SagaInvariants.Invariant
        public var message: String
        public var runs: Int
        public var run: Int
        public var input: JSONValue
        public var schedule: [String]
    }

    public var workflow: String
    public var version: Int
    public var runs: Int
    public var seed: UInt64
    public var faults: SimulationFaults
    public var endStates: [EndState] = []
    public var violations: [Violation] = []
    public var findings: [SimulationFinding]

    init(workflow: String, version: Int, runs: Int, seed: UInt64, faults: SimulationFaults, findings: [SimulationFinding]) {
        self.workflow = workflow
        self.version = version
        self.runs = runs
        self.seed = seed
        self.faults = faults
        self.findings = findings
    }

    /// Whether no promise was broken.
    public var passed: Bool { violations.isEmpty }

    /// The findings no reviewer accepted.
    public var openFindings: [SimulationFinding] { findings.filter { !$0.accepted } }

    /// A reviewer's acceptance of a finding: `KIND` (anywhere) or `KIND:STEP`.
    public struct Acceptance: Sendable, Hashable {
        public var kind: SimulationFinding.Kind
        public var step: String?

        /// - Throws: ``SimulationFaults/ParseError`` when the kind is not one of the findings'.
        public init(parsing text: String) throws(SimulationFaults.ParseError) {
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let kind = SimulationFinding.Kind(rawValue: parts[0]) else {
                let kinds = SimulationFinding.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                throw SimulationFaults.ParseError(text: text, reason: "expected KIND or KIND:STEP, where KIND is one of \(kinds)")
            }
            self.kind = kind
            self.step = parts.count == 2 ? parts[1] : nil
        }

        func covers(_ finding: SimulationFinding) -> Bool { finding.kind == kind && (step == nil || finding.step == step) }
    }

    /// Marks the findings a reviewer accepted.
    public mutating func accept(_ acceptances: [Acceptance]) {
        for position in findings.indices where acceptances.contains(where: { $0.covers(findings[position]) }) {
            findings[position].accepted = true
        }
    }

    /// Whether a shorter story (or an equal one from an earlier run) should replace `current`.
    static func shorter(_ schedule: [String], than current: [String]) -> Bool { schedule.count < current.count }

    mutating func add(_ run: SimulationRun) {
        runs += 1
        if let violation = run.violation {
            if let position = violations.firstIndex(where: { $0.invariant == violation.invariant }) {
                if violations[position].count(run) { violations[position].message = violation.message }
            } else {
                violations.append(
                    Violation(
                        invariant: violation.invariant, message: violation.message, runs: 1, run: run.number, input: run.input,
                        schedule: run.schedule))
            }
        }
        let description = run.endState
        if let position = endStates.firstIndex(where: { $0.description == description }) {
            endStates[position].count(run)
        } else {
            endStates.append(
                EndState(
                    description: description, status: run.status, runs: 1, run: run.number, input: run.input, schedule: run.schedule))
        }
        if run.status == .suspended, let reason = run.suspensionReason {
            note(
                SimulationFinding(
                    kind: .suspendedPath, step: run.steps.first(where: { reason.contains("'\($0.name)'") })?.name,
                    message: "runs end SUSPENDED, waiting for an operator: \(SimulationRun.generalized(reason))"), run)
        }
        for null in Set(run.nullPlaceholders) {
            note(
                SimulationFinding(
                    kind: .nullInCompensation, step: null.step,
                    message:
                        "the compensation of \(null.step) is sent with \(null.placeholder) as null when \(null.why): the participant cannot tell what to undo from the payload; undo by what the compensation always has (the saga's input, the saga id, the leg's idempotency key)"
                ), run)
        }
    }

    /// Counts a finding seen in a run, keeping the shortest run's story.
    private mutating func note(_ finding: SimulationFinding, _ run: SimulationRun) {
        if let position = findings.firstIndex(where: { $0.kind == finding.kind && $0.message == finding.message }) {
            findings[position].runs = (findings[position].runs ?? 0) + 1
            if Self.shorter(run.schedule, than: findings[position].schedule ?? []) {
                findings[position].run = run.number
                findings[position].schedule = run.schedule
            }
        } else {
            var seen = finding
            seen.runs = 1
            seen.run = run.number
            seen.schedule = run.schedule
            findings.append(seen)
        }
    }

    mutating func finish() {
        endStates.sort { ($0.runs, $1.description) > ($1.runs, $0.description) }
        violations.sort { $0.runs > $1.runs }
    }

    // MARK: - Output

    /// The report as JSON, for CI.
    public var json: JSONValue {
        func integer(_ value: Int) -> JSONValue { .integer(Int64(value)) }
        func lines(_ schedule: [String]) -> JSONValue { .array(schedule.map(JSONValue.string)) }
        let faultSettings = faults.settings.mapValues { rates in JSONValue.object(rates.mapValues(JSONValue.number)) }
        return [
            "workflow": .string(workflow),
            "version": integer(version),
            "runs": integer(runs),
            "seed": .string(String(seed)),
            "faults": .object(faultSettings),
            "passed": .bool(passed),
            "end_states": .array(
                endStates.map {
                    [
                        "end_state": .string($0.description), "status": .string($0.status.rawValue), "runs": integer($0.runs),
                        "shortest_run": integer($0.run), "input": $0.input, "schedule": lines($0.schedule),
                    ]
                }),
            "invariants": .array(
                SagaInvariants.Invariant.allCases.map { invariant in
                    let broken = violations.first { $0.invariant == invariant }
                    return [
                        "name": .string(invariant.rawValue), "promise": .string(invariant.summary),
                        "violated_runs": integer(broken?.runs ?? 0),
                    ]
                }),
            "violations": .array(
                violations.map {
                    [
                        "invariant": .string($0.invariant.rawValue), "message": .string($0.message), "runs": integer($0.runs),
                        "shortest_run": integer($0.run), "input": $0.input, "schedule": lines($0.schedule),
                    ]
                }),
            "findings": .array(
                findings.map { finding in
                    var members: [String: JSONValue] = ["kind": .string(finding.kind.rawValue), "message": .string(finding.message)]
                    if let step = finding.step { members["step"] = .string(step) }
                    members["accepted"] = .bool(finding.accepted)
                    if let runs = finding.runs { members["runs"] = integer(runs) }
                    if let run = finding.run { members["shortest_run"] = integer(run) }
                    if let schedule = finding.schedule { members["schedule"] = lines(schedule) }
                    return .object(members)
                }),
        ]
    }

    /// A value's compact JSON, cut at 200 characters.
    static func brief(_ value: JSONValue) -> String {
        let text = value.canonicalJSON
        return text.count > 200 ? String(text.prefix(199)) + "…" : text
    }

    /// The report for people: end states with their stories, the promises, the findings.
    public var text: String {
        var out: [String] = []
        out.append("\(workflow) v\(version): \(runs) runs, seed \(seed)")
        out.append("")
        out.append("END STATES")
        let width = min(max(endStates.map(\.description.count).max() ?? 0, 9), 100)
        out.append("  " + "END STATE".padding(toLength: width, withPad: " ", startingAt: 0) + "  RUNS  SHORTEST")
        for state in endStates {
            let name = state.description.count > width ? String(state.description.prefix(width - 1)) + "…" : state.description
            let runs = String(state.runs)
            out.append(
                "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + String(repeating: " ", count: max(0, 4 - runs.count)) + runs + "  run \(state.run), \(state.schedule.count) events")
        }
        for state in endStates {
            out.append("")
            out.append("  \(state.description) (run \(state.run)):")
            out.append("    input \(Self.brief(state.input))")
            out += state.schedule.map { "    \($0)" }
        }
        out.append("")
        out.append("INVARIANTS (checked after every event of every run)")
        for invariant in SagaInvariants.Invariant.allCases {
            let broken = violations.first { $0.invariant == invariant }
            let mark = broken.map { "FAIL (\($0.runs) run\($0.runs == 1 ? "" : "s"))" } ?? "ok"
            out.append("  \(mark.padding(toLength: 14, withPad: " ", startingAt: 0)) \(invariant.rawValue): \(invariant.summary)")
        }
        if !violations.isEmpty {
            out.append("")
            out.append("VIOLATIONS")
            for violation in violations {
                out.append("  \(violation.invariant.rawValue): \(violation.message) (run \(violation.run)):")
                out.append("    input \(Self.brief(violation.input))")
                out += violation.schedule.map { "    \($0)" }
            }
        }
        out.append("")
        out.append("FINDINGS")
        if findings.isEmpty { out.append("  none") }
        for finding in findings {
            let seen = finding.runs.map { " (\($0) run\($0 == 1 ? "" : "s"), shortest run \(finding.run ?? 0))" } ?? ""
            let accepted = finding.accepted ? " (accepted)" : ""
            out.append("  \(finding.kind.rawValue)\(finding.step.map { " [\($0)]" } ?? "")\(accepted): \(finding.message)\(seen)")
            if let schedule = finding.schedule { out += schedule.map { "    \($0)" } }
        }
        out.append("")
        let violated = violations.reduce(0) { $0 + $1.runs }
        out.append(
            "\(passed ? "passed" : "FAILED"): \(violations.count) invariant\(violations.count == 1 ? "" : "s") violated (\(violated) run\(violated == 1 ? "" : "s")), \(findings.count) finding\(findings.count == 1 ? "" : "s") (\(findings.count - openFindings.count) accepted)"
        )
        return out.joined(separator: "\n")
    }
}

/// A report entry that counts the runs that reached it and keeps the shortest one's story.
protocol KeepsShortestRun {
    var runs: Int { get set }
    var run: Int { get set }
    var input: JSONValue { get set }
    var schedule: [String] { get set }
}

extension KeepsShortestRun {
    /// Counts `seen`, which becomes the run kept when its story is shorter.
    /// - Returns: Whether it became the run kept.
    @discardableResult
    mutating func count(_ seen: SimulationRun) -> Bool {
        runs += 1
        guard SimulationReport.shorter(seen.schedule, than: schedule) else { return false }
        run = seen.number
        input = seen.input
        schedule = seen.schedule
        return true
    }
}
