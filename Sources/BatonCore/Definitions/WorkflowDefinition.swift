/// A versioned saga workflow: ordered steps, each a command to a participant, with its own timeout,
/// retry policy and optional compensation.
///
/// Definitions are written in YAML or JSON (see `docs/workflows.md`), parsed with
/// ``WorkflowDefinition/parse(_:format:source:)`` and checked with ``WorkflowDefinition/validate()``.
/// A saga pins the ``contentHash`` of the definition it started with.
public struct WorkflowDefinition: Sendable, Hashable, Codable {
    /// The workflow's name (`funds-transfer`): letters, digits, `-` and `_`.
    public var name: String
    /// The definition's version, 1 or more; a saga runs the version it started with.
    public var version: Int
    public var description: String
    /// The shape saga input must have, when given; templates may then only name its fields.
    public var input: InputSchema?
    /// How long a saga may run before it is compensated, when given.
    public var deadline: SagaDuration?
    public var steps: [StepDefinition]
    /// The failure handlers (`on_failure:`), when there are any: steps that run in order after the
    /// saga has been compensated and before it ends `FAILED` or `CANCELLED`. `nil` rather than empty,
    /// so that definitions written before they existed keep their hash.
    public var onFailure: [StepDefinition]?

    public init(
        name: String,
        version: Int,
        description: String = "",
        input: InputSchema? = nil,
        deadline: SagaDuration? = nil,
        steps: [StepDefinition],
        failureHandlers: [StepDefinition] = []
    ) {
        self.name = name
        self.version = version
        self.description = description
        self.input = input
        self.deadline = deadline
        self.steps = steps
        self.onFailure = failureHandlers.isEmpty ? nil : failureHandlers
    }

    /// The failure handlers, in the order they run.
    public var failureHandlers: [StepDefinition] { onFailure ?? [] }

    /// The steps and then the failure handlers: a saga keeps one state per entry, in this order.
    /// (Without handlers, `steps` itself: no copy.)
    public var allSteps: [StepDefinition] {
        guard let onFailure else { return steps }
        return steps + onFailure
    }

    /// The entry at `index` of ``allSteps``, without building that array (the state machine asks on
    /// every event).
    public func step(at index: Int) -> StepDefinition {
        index < steps.count ? steps[index] : failureHandlers[index - steps.count]
    }

    /// Whether the entry at this index of ``allSteps`` is a failure handler.
    public func isFailureHandler(_ index: Int) -> Bool { index >= steps.count }

    /// The index of the pivot step, when the workflow has one.
    public var pivotIndex: Int? { steps.firstIndex(where: \.pivot) }

    /// The index in ``allSteps`` of the signal step that waits for `signal`.
    public func stepIndex(waitingFor signal: String) -> Int? { allSteps.firstIndex { $0.signal == signal } }

    /// The participants the workflow sends commands to.
    public var participants: [String] { allSteps.filter(\.sendsCommand).map(\.participant) }

    /// The index in ``allSteps`` of the step or failure handler with this name.
    public func stepIndex(named name: String) -> Int? {
        steps.firstIndex(where: { $0.name == name }) ?? onFailure?.firstIndex(where: { $0.name == name }).map { steps.count + $0 }
    }
}

/// One step of a workflow: a command sent to `participant` to perform `action`.
public struct StepDefinition: Sendable, Hashable, Codable {
    public var name: String
    public var participant: String
    public var action: String
    /// The command body: JSON with `{{…}}` placeholders (see ``PayloadTemplate``).
    public var payload: JSONValue
    /// How long one attempt may take before its outcome is treated as unknown.
    public var timeout: SagaDuration
    public var retry: RetryPolicy
    /// How to undo this step, for steps before the pivot.
    public var compensate: CompensationDefinition?
    /// The point of no return: once it succeeds the saga only moves forward.
    public var pivot: Bool
    /// When given, the step runs only if it holds, and is `SKIPPED` otherwise.
    public var when: StepCondition?
    /// For a signal step, the signal it waits for instead of sending a command (it then has no
    /// participant or action, one attempt, and nothing to compensate).
    public var signal: String?
    /// For a step of a parallel group, its group and branch.
    public var branch: BranchPlacement?
    /// For a child step, the workflow of the saga it starts (its newest version) instead of sending
    /// a command; `payload` is that saga's input. It has no participant or action, and before the
    /// pivot it is compensated by compensating the child.
    public var workflow: String?

    public init(
        name: String,
        participant: String,
        action: String,
        payload: JSONValue = .object([:]),
        timeout: SagaDuration = StepDefinition.defaultTimeout,
        retry: RetryPolicy = .default,
        compensate: CompensationDefinition? = nil,
        pivot: Bool = false,
        when: StepCondition? = nil,
        signal: String? = nil,
        branch: BranchPlacement? = nil,
        workflow: String? = nil
    ) {
        self.workflow = workflow
        self.name = name
        self.participant = participant
        self.action = action
        self.payload = payload
        self.timeout = timeout
        self.retry = retry
        self.compensate = compensate
        self.pivot = pivot
        self.when = when
        self.signal = signal
        self.branch = branch
    }

    /// A step that waits for a signal (`signal: payment-result`).
    public static func waiting(for signal: String, name: String, timeout: SagaDuration, when: StepCondition? = nil) -> StepDefinition {
        StepDefinition(
            name: name, participant: "", action: "", timeout: timeout, retry: .once, when: when, signal: signal)
    }

    /// A step that starts a saga of `workflow` with `input` and waits for its end.
    public static func child(
        _ workflow: String, name: String, input: JSONValue = .object([:]), timeout: SagaDuration, retry: RetryPolicy = .default,
        when: StepCondition? = nil
    ) -> StepDefinition {
        StepDefinition(
            name: name, participant: "", action: "", payload: input, timeout: timeout, retry: retry, when: when, workflow: workflow)
    }

    /// Whether the step sends a command to a participant (not a signal step or a child step).
    public var sendsCommand: Bool { signal == nil && workflow == nil }

    /// The timeout of a step or compensation that does not set one.
    public static let defaultTimeout = SagaDuration.seconds(30)
}

/// Where a step of a parallel group stands: the steps of a group follow one another in
/// ``WorkflowDefinition/steps``, branch after branch, and each carries its placement.
public struct BranchPlacement: Sendable, Hashable, Codable {
    /// The group's name (the `parallel` entry's `name`).
    public var group: String
    /// The branch's name, unique in its group (a one-step branch is named after its step).
    public var name: String
    /// The branch's own condition, carried by each of its steps: decided once, when the group
    /// starts; when it does not hold, every step of the branch is `SKIPPED`.
    public var when: StepCondition?

    public init(group: String, name: String, when: StepCondition? = nil) {
        self.group = group
        self.name = name
        self.when = when
    }
}

/// A parallel group as the state machine sees it: where its steps are in
/// ``WorkflowDefinition/steps`` and where each branch's are.
public struct ParallelGroup: Sendable, Hashable {
    public var name: String
    /// The indices of all its steps.
    public var range: Range<Int>
    /// The indices of each branch's steps, in the order the branches are written.
    public var branches: [Range<Int>]

    /// The indices of the branch that holds step `index`.
    public func branch(containing index: Int) -> Range<Int>? { branches.first { $0.contains(index) } }
}

extension WorkflowDefinition {
    /// The parallel group that holds step `index`, if one does (failure handlers are never in one).
    public func parallelGroup(containing index: Int) -> ParallelGroup? {
        guard index < steps.count, let placement = steps[index].branch else { return nil }
        var lower = index
        while lower > 0, steps[lower - 1].branch?.group == placement.group { lower -= 1 }
        var upper = index + 1
        while upper < steps.count, steps[upper].branch?.group == placement.group { upper += 1 }
        var branches: [Range<Int>] = []
        var start = lower
        for position in (lower + 1)..<(upper + 1) where position == upper || steps[position].branch?.name != steps[start].branch?.name {
            branches.append(start..<position)
            start = position
        }
        return ParallelGroup(name: placement.group, range: lower..<upper, branches: branches)
    }

    /// Every parallel group, in step order.
    public var parallelGroups: [ParallelGroup] {
        var groups: [ParallelGroup] = []
        var index = 0
        while index < steps.count {
            if let group = parallelGroup(containing: index) {
                groups.append(group)
                index = group.range.upperBound
            } else {
                index += 1
            }
        }
        return groups
    }
}

/// How a step is undone: another action on the same participant, with its own budget.
public struct CompensationDefinition: Sendable, Hashable, Codable {
    public var action: String
    /// May reference the step's own output (`{{steps.<this step>.output.…}}`), which is `null` when
    /// the step timed out.
    public var payload: JSONValue
    public var timeout: SagaDuration
    /// When this budget is spent, the saga is parked in `SUSPENDED` for an operator.
    public var retry: RetryPolicy

    public init(
        action: String,
        payload: JSONValue = .object([:]),
        timeout: SagaDuration = StepDefinition.defaultTimeout,
        retry: RetryPolicy = .defaultCompensation
    ) {
        self.action = action
        self.payload = payload
        self.timeout = timeout
        self.retry = retry
    }
}

/// The expected shape of saga input: required fields and their types.
public struct InputSchema: Sendable, Hashable, Codable {
    public var required: [String]
    public var properties: [String: InputField]

    public init(required: [String] = [], properties: [String: InputField]) {
        self.required = required
        self.properties = properties
    }
}

/// One field of an ``InputSchema``.
public struct InputField: Sendable, Hashable, Codable {
    public enum FieldType: String, Sendable, Hashable, Codable, CaseIterable {
        case string, integer, number, boolean, object, array
    }

    public var type: FieldType
    public var description: String?
    /// The smallest allowed value, for `integer` and `number` fields (an amount of at least 1).
    public var minimum: Double?

    public init(type: FieldType, description: String? = nil, minimum: Double? = nil) {
        self.type = type
        self.description = description
        self.minimum = minimum
    }
}
