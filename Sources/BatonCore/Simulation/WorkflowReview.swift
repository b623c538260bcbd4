/// Something about a workflow a reviewer would want to know before it ships: not a broken promise
/// of the engine, but a choice in the definition that will hurt some sagas.
public struct SimulationFinding: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Some runs end `SUSPENDED`, waiting for an operator.
        case suspendedPath = "suspended-path"
        /// A retry budget is spent sooner than one attempt would time out.
        case retryBudgetShorterThanTimeout = "retry-budget-shorter-than-timeout"
        /// A compensation's payload names data that is not there when its action timed out.
        case nullInCompensation = "null-in-compensation"
        /// A step after the pivot gives up (and suspends the saga) after too few attempts.
        case fewAttemptsAfterPivot = "few-attempts-after-pivot"
        /// The saga's deadline is shorter than its steps' timeouts in a row.
        case deadlineShorterThanPath = "deadline-shorter-than-path"
    }

    public var kind: Kind
    /// The step it is about, when it is about one.
    public var step: String?
    public var message: String
    /// For a finding seen in runs: how many, and the shortest run's number and story.
    public var runs: Int?
    public var run: Int?
    public var schedule: [String]?
    /// Whether a reviewer accepted it (``SimulationReport/accept(_:)``): still reported, but not a
    /// failure under `--strict`.
    public var accepted = false

    public init(kind: Kind, step: String?, message: String, runs: Int? = nil, run: Int? = nil, schedule: [String]? = nil) {
        self.kind = kind
        self.step = step
        self.message = message
        self.runs = runs
        self.run = run
        self.schedule = schedule
    }
}

/// The findings read from a definition alone, without running it.
public enum WorkflowReview {
    /// The fewest attempts a step after the pivot should have: after the pivot a spent budget
    /// suspends the saga, so one lost reply must not be enough.
    public static let minimumAttemptsAfterPivot = 3

    public static func findings(in definition: WorkflowDefinition) -> [SimulationFinding] {
        var findings: [SimulationFinding] = []
        let pivot = definition.pivotIndex
        for (index, step) in definition.allSteps.enumerated() {
            if step.sendsCommand {
                if let finding = retryBudgetFinding(step.name, "action", step.retry, step.timeout) { findings.append(finding) }
                if let compensation = step.compensate,
                    let finding = retryBudgetFinding(step.name, "compensation", compensation.retry, compensation.timeout)
                {
                    findings.append(finding)
                }
            }
            if let pivot, index > pivot, !definition.isFailureHandler(index), step.signal == nil,
                step.retry.maxAttempts < minimumAttemptsAfterPivot
            {
                let attempts = step.retry.maxAttempts == 1 ? "1 attempt" : "\(step.retry.maxAttempts) attempts"
                findings.append(
                    SimulationFinding(
                        kind: .fewAttemptsAfterPivot, step: step.name,
                        message:
                            "\(step.name) comes after the pivot with \(attempts): after the pivot nothing is undone and a spent budget suspends the saga, so \(step.retry.maxAttempts == 1 ? "one lost reply" : "\(step.retry.maxAttempts) lost replies") park it for an operator; give it at least \(minimumAttemptsAfterPivot)"
                    ))
            }
        }
        if let deadline = definition.deadline, !definition.steps.isEmpty {
            let through = pivot ?? (definition.steps.count - 1)
            let path = longestPath(of: definition, through: through)
            if deadline < path {
                let scope = pivot.map { "up to the pivot \(definition.steps[$0].name)" } ?? "of the workflow"
                findings.append(
                    SimulationFinding(
                        kind: .deadlineShorterThanPath, step: nil,
                        message:
                            "the deadline \(deadline) is shorter than the \(path) the steps \(scope) may take with one attempt each, each taking its timeout: slow participants are cut off before they have had their time"
                    ))
            }
        }
        return findings
    }

    /// How long the retries of a budget wait in all, at most (no jitter): the delays between its
    /// attempts.
    public static func retryWindow(_ policy: RetryPolicy) -> SagaDuration {
        var total: Int64 = 0
        var random = SeededRandomNumberGenerator(seed: 0)
        var noJitter = policy
        noJitter.jitter = 0
        for attempt in stride(from: 1, to: max(policy.maxAttempts, 1), by: 1) {
            total = min(total &+ noJitter.delay(after: attempt, using: &random).milliseconds, SagaDuration.maximum.milliseconds)
        }
        return SagaDuration(milliseconds: total)
    }

    private static func retryBudgetFinding(
        _ step: String, _ leg: String, _ policy: RetryPolicy, _ timeout: SagaDuration
    )
        -> SimulationFinding?
    {
        guard policy.maxAttempts > 1 else { return nil }
        let window = retryWindow(policy)
        guard window < timeout else { return nil }
        return SimulationFinding(
            kind: .retryBudgetShorterThanTimeout, step: step,
            message:
                "the \(leg) of \(step) spends its \(policy.maxAttempts) attempts within \(window) of retry delays, less than its \(timeout) timeout: a participant that answers 'retry' through an outage shorter than one timeout exhausts the budget; lengthen the delays (initial, max_delay) so they add up to at least the timeout"
        )
    }

    /// The longest the steps `0...last` take when each takes its timeout once: steps in a row add
    /// up, a parallel group takes its longest branch.
    public static func longestPath(of definition: WorkflowDefinition, through last: Int) -> SagaDuration {
        var total: Int64 = 0
        var index = 0
        while index <= last, index < definition.steps.count {
            if let group = definition.parallelGroup(containing: index) {
                let longest =
                    group.branches.map { branch in
                        branch.reduce(Int64(0)) { $0 &+ definition.steps[$1].timeout.milliseconds }
                    }.max() ?? 0
                total = total &+ longest
                index = group.range.upperBound
            } else {
                total = total &+ definition.steps[index].timeout.milliseconds
                index += 1
            }
        }
        return SagaDuration(milliseconds: min(max(total, 0), SagaDuration.maximum.milliseconds))
    }
}
