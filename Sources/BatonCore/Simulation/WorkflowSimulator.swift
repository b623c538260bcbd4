import Foundation

/// Runs a workflow's sagas through the pure state machine, with no servers, against a simulated
/// world of participants that answer late, twice, never, or not at all as asked, and reports what
/// can happen: every end state and a shortest story that reaches it, any broken promise
/// (``SagaInvariants``), and what a reviewer would want to know (``SimulationFinding``).
///
/// Each run draws everything (the input, every answer and its timing, a cancel, the deadline) from
/// a generator seeded by the report's seed and the run's number, so the same seed replays the same
/// runs exactly.
public struct WorkflowSimulator: Sendable {
    public struct Options: Sendable {
        /// How many sagas to run.
        public var runs: Int
        public var seed: UInt64
        public var faults: SimulationFaults
        /// The input of every saga; when `nil`, each run draws one from the workflow's input schema.
        public var input: JSONValue?
        /// Defects to give the state machine (tests of the simulator itself).
        @_spi(Mutations) public var mutations: Set<SagaStateMachine.Mutation> = []

        public init(runs: Int = 1000, seed: UInt64, faults: SimulationFaults = SimulationFaults(), input: JSONValue? = nil) {
            self.runs = runs
            self.seed = seed
            self.faults = faults
            self.input = input
        }
    }

    /// The most runs one simulation may ask for.
    public static let maximumRuns = 100_000
    /// The most events one run may take before it counts as never settling.
    static let eventLimit = 5_000

    public let definition: WorkflowDefinition
    /// For each step, the output its participant answers with (``SimulatedWorld/outputShapes(of:)``):
    /// read from the definition once, not once per run.
    let outputShapes: [String: JSONValue]

    public init(definition: WorkflowDefinition) {
        self.definition = definition
        self.outputShapes = SimulatedWorld.outputShapes(of: definition)
    }

    /// A seed for a simulation that was given none: small enough to type back in.
    public static func randomSeed() -> UInt64 { UInt64.random(in: 0...UInt64(UInt32.max)) }

    /// A seed written as digits (1 to 20 of them, nothing else, at most `UInt64.max`); `nil` for
    /// anything else.
    public static func seed(parsing text: some StringProtocol) -> UInt64? {
        guard (1...20).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return UInt64(text)
    }

    /// Runs `options.runs` sagas and reports on them.
    public func simulate(_ options: Options) -> SimulationReport {
        var report = SimulationReport(
            workflow: definition.name, version: definition.version, runs: 0, seed: options.seed, faults: options.faults,
            findings: WorkflowReview.findings(in: definition))
        for number in 1...max(1, min(options.runs, Self.maximumRuns)) {
            report.add(run(number, options))
        }
        report.finish()
        return report
    }

    /// One run, as ``simulate(_:)`` makes it: the same seed and number give the same run.
    public func run(_ number: Int, _ options: Options) -> SimulationRun {
        var world = SimulatedWorld(
            definition: definition, outputShapes: outputShapes, options: options,
            seed: options.seed ^ (UInt64(truncatingIfNeeded: number) &* 0x9E37_79B9_7F4A_7C15))
        world.play()
        return world.result(number: number)
    }
}

/// What happened in one run.
public struct SimulationRun: Sendable {
    public var number: Int
    /// The saga's input, as drawn (or given).
    public var input: JSONValue
    public var status: SagaStatus
    /// Each step's status at the end, in workflow order (failure handlers last).
    public var steps: [(name: String, status: StepStatus)]
    public var suspensionReason: String?
    /// The story, one line per event: when, what, and what it did.
    public var schedule: [String]
    public var violation: SagaInvariants.Violation?
    /// Compensations sent with a placeholder that rendered null, and why.
    public var nullPlaceholders: [NullPlaceholder]

    /// A placeholder of a compensation's payload that named data that was not there.
    public struct NullPlaceholder: Sendable, Hashable {
        public var step: String
        public var placeholder: String
        public var why: String
    }

    /// The end state, in words: the status, the suspension's reason, and every step that did not
    /// end as a completed saga's steps do.
    public var endState: String {
        var text = status.rawValue
        if let reason = suspensionReason { text += " (\(Self.generalized(reason)))" }
        let notable = steps.filter { step in
            step.status != .pending && !(status == .completed && step.status == .succeeded)
        }
        if !notable.isEmpty { text += ": " + notable.map { "\($0.name) \($0.status.rawValue)" }.joined(separator: ", ") }
        return text
    }

    /// A suspension reason with its counts taken out, so that runs stuck the same way group
    /// together.
    static func generalized(_ reason: String) -> String {
        reason.replacingOccurrences(of: #"\d+ (times|attempts)"#, with: "N $1", options: .regularExpression)
    }
}

/// One saga and the world around it: participants, signals, children, a cancel and the deadline,
/// all as pending events on a clock.
struct SimulatedWorld {
    let definition: WorkflowDefinition
    let faults: SimulationFaults
    var machine: SagaStateMachine
    var invariants: SagaInvariants
    /// The world's choices (answers, delays, input).
    var random: SeededRandomNumberGenerator
    /// The state machine's own (retry jitter), apart so a change in one does not shift the other.
    var jitter: SeededRandomNumberGenerator
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    var now: Date
    var pending: [Pending] = []
    var sequence = 0
    var schedule: [String] = []
    var nullPlaceholders: [SimulationRun.NullPlaceholder] = []
    /// After how many events a cancel comes, and the participants stall until the deadline.
    var cancelAfter: Int?
    var stallAfter: Int?
    /// Signals sent early, before their step waits.
    var signalsSentEarly: Set<String> = []
    /// How each child saga ended, by step: a later attempt finds the same child (its key is the
    /// parent's and the step's), so it hears the same end.
    var childEnds: [String: SagaEvent] = [:]
    /// For each step, the output fields the workflow's templates and conditions read from it.
    let outputShapes: [String: JSONValue]

    struct Pending {
        enum Kind {
            case event(SagaEvent)
            /// The participants stall until the saga's deadline passes.
            case stall
        }
        var due: Date
        var order: Int
        var kind: Kind
    }

    init(definition: WorkflowDefinition, outputShapes: [String: JSONValue], options: WorkflowSimulator.Options, seed: UInt64) {
        self.definition = definition
        self.faults = options.faults
        self.random = SeededRandomNumberGenerator(seed: seed)
        self.jitter = SeededRandomNumberGenerator(seed: ~seed)
        self.now = start
        self.outputShapes = outputShapes
        let input = options.input ?? InputSampler.sample(definition.input, using: &random)
        let saga = SagaInstance(id: "sim", definition: definition, workflowHash: "simulated", input: input, now: start)
        // The saga is built from this very definition, so they match.
        self.machine = try! SagaStateMachine(definition: definition, saga: saga)
        self.machine.mutations = options.mutations
        self.invariants = SagaInvariants(definition: definition)
    }

    mutating func play() {
        // A cancel, or the stall that runs the saga into its deadline, comes after a random number
        // of events rather than at a random time: every step, short or long, gets its share.
        let positions = 1...max(2, definition.allSteps.count * 2)
        if Double.random(in: 0..<1, using: &random) < faults.cancel { cancelAfter = Int.random(in: positions, using: &random) }
        if definition.deadline != nil, Double.random(in: 0..<1, using: &random) < faults.deadline {
            stallAfter = Int.random(in: positions, using: &random)
        }
        for step in definition.allSteps {
            guard let name = step.signal, Double.random(in: 0..<1, using: &random) < faults.rates(for: name).early else { continue }
            signalsSentEarly.insert(step.name)
            enqueue(.event(.signal(signal(for: step, outcome: .succeeded(payload: output(of: step.name))))), at: start)
        }
        apply(.start)
        var events = 1
        while invariants.violation == nil, let next = popNext() {
            events += 1
            guard events <= WorkflowSimulator.eventLimit else {
                invariants.fail(.settles, "still running after \(WorkflowSimulator.eventLimit) events")
                return
            }
            now = max(now, next.due)
            if events == cancelAfter {
                enqueue(.event(.cancel(reason: "cancelled by the simulation")), at: now + SagaDuration(milliseconds: 1))
            }
            if events == stallAfter { enqueue(.stall, at: now + SagaDuration(milliseconds: 1)) }
            switch next.kind {
            case .event(let event): apply(event)
            case .stall: stallUntilDeadline()
            }
        }
        guard invariants.violation == nil else { return }
        let saga = machine.saga
        if !saga.status.isTerminal && saga.status != .suspended {
            invariants.fail(
                .settles, "the saga is \(saga.status.rawValue) at step \(saga.steps[saga.cursor].name) with nothing left to happen")
        }
        invariants.checkFinal(saga)
    }

    func result(number: Int) -> SimulationRun {
        let saga = machine.saga
        return SimulationRun(
            number: number, input: saga.input, status: saga.status, steps: saga.steps.map { ($0.name, $0.status) },
            suspensionReason: saga.status == .suspended ? saga.suspensionReason : nil, schedule: schedule,
            violation: invariants.violation, nullPlaceholders: nullPlaceholders)
    }

    // MARK: - Events

    private mutating func apply(_ event: SagaEvent) {
        let before = machine.saga
        let transition = machine.handle(event, now: now, random: &jitter)
        let saga = machine.saga
        describe(event, transition)
        invariants.observe(event, transition, before: before, after: saga)
        for effect in transition.effects {
            switch effect {
            case .sendCommand(let command): answer(command)
            case .scheduleTimer(let timer):
                // A timer replaces the pending one in its slot, as the durable scheduler's does.
                pending.removeAll { if case .event(.timerFired(let other)) = $0.kind { other.key == timer.key } else { false } }
                enqueue(.event(.timerFired(timer)), at: timer.due)
            case .cancelTimer(let key):
                pending.removeAll { if case .event(.timerFired(let other)) = $0.kind { other.key == key } else { false } }
            case .startChild(let child): answerChild(child, .action)
            case .compensateChild(let child): answerChild(child, .compensation)
            case .recordHistory(let entry):
                if entry.kind == .signalAwaited, let name = entry.step { sendSignal(forStep: name) }
            case .finished: break
            }
        }
        for command in transition.commands where command.direction == .compensation { checkPlaceholders(of: command.step) }
    }

    /// The next pending event: the earliest, in the order they were planned among equals.
    private mutating func popNext() -> Pending? {
        guard let first = pending.indices.min(by: { (pending[$0].due, pending[$0].order) < (pending[$1].due, pending[$1].order) })
        else { return nil }
        return pending.remove(at: first)
    }

    private mutating func enqueue(_ kind: Pending.Kind, at due: Date) {
        sequence += 1
        pending.append(Pending(due: due, order: sequence, kind: kind))
    }

    /// The participants go quiet until the saga's deadline, which then fires.
    private mutating func stallUntilDeadline() {
        guard
            let position = pending.firstIndex(where: {
                if case .event(.timerFired(let timer)) = $0.kind { timer.kind == .sagaDeadline } else { false }
            })
        else { return }
        let deadline = pending.remove(at: position)
        schedule.append("\(clock)  the participants stall until the saga's deadline")
        now = max(now, deadline.due)
        if case .event(let event) = deadline.kind { apply(event) }
    }

    // MARK: - Participants

    /// Plans a participant's answer to one command.
    private mutating func answer(_ command: StepCommand) {
        let rates = faults.rates(for: command.participant)
        let timeout = command.timeout.map { Double($0.milliseconds) / 1000 } ?? max(command.deadline.timeIntervalSince(now), 0.001)
        func reply(_ status: ReplyStatus) -> SagaEvent {
            .reply(StepReply(step: command.step, direction: command.direction, attempt: command.attempt, status: status))
        }
        let succeeded = reply(.succeeded(output: command.direction == .action ? output(of: command.step) : .object([:])))
        if command.direction == .compensation, Double.random(in: 0..<1, using: &random) < rates.compensationFail {
            enqueue(.event(reply(.failed(code: "simulated", message: "a failing compensation"))), at: soon(timeout))
            return
        }
        switch draw(rates) {
        case .fail? where command.direction == .action:
            enqueue(.event(reply(.failed(code: "simulated", message: "a business failure"))), at: soon(timeout))
        case .retry?:
            enqueue(.event(reply(.retry(after: nil, message: "a transient failure"))), at: soon(timeout))
        case .retryAfter?:
            let after = SagaDuration(milliseconds: Int64.random(in: 1_000...30_000, using: &random))
            enqueue(.event(reply(.retry(after: after, message: "busy"))), at: soon(timeout))
        case .heartbeat?:
            enqueue(.event(reply(.inProgress)), at: now + seconds(timeout * 0.5))
            enqueue(.event(succeeded), at: now + seconds(timeout * Double.random(in: 1.05...1.4, using: &random)))
        case let fault:
            deliver(succeeded, fault, timeout: timeout)
        }
    }

    /// Delivers an answer as the drawn fault says: never (`timeout`), after the timeout (`late`),
    /// twice (`duplicate`), or else soon.
    private mutating func deliver(_ answer: SagaEvent, _ fault: SimulationFaults.Kind?, timeout: Double) {
        switch fault {
        case .timeout?:
            break
        case .late?:
            enqueue(.event(answer), at: now + seconds(timeout * Double.random(in: 1.05...3, using: &random)))
        case .duplicate?:
            let first = soon(timeout)
            enqueue(.event(answer), at: first)
            enqueue(.event(answer), at: first + seconds(timeout * Double.random(in: 0...1, using: &random)))
        default:
            enqueue(.event(answer), at: soon(timeout))
        }
    }

    /// Plans the news of a child saga: its end, or (undoing it) its compensation.
    private mutating func answerChild(_ child: ChildSaga, _ direction: StepDirection) {
        let index = definition.stepIndex(named: child.step) ?? 0
        let timeout = Double(definition.step(at: index).timeout.milliseconds) / 1000
        let rates = faults.rates(for: child.workflow)
        func news(_ result: ChildReport.Result, _ refused: StepDirection? = nil) -> SagaEvent {
            .child(ChildReport(step: child.step, childID: "sim-child", result: result, direction: refused))
        }
        let done: SagaEvent =
            direction == .action ? news(.completed(output: output(of: child.step))) : news(.cancelled(message: "the child was undone"))
        if direction == .compensation, Double.random(in: 0..<1, using: &random) < rates.compensationFail {
            enqueue(.event(news(.refused(message: "the child is past its pivot"), .compensation)), at: soon(timeout))
            return
        }
        if direction == .action, let end = childEnds[child.step] {
            enqueue(.event(end), at: soon(timeout))
            return
        }
        switch draw(rates) {
        case .fail? where direction == .action:
            let failed = news(.failed(message: "the child saga failed"))
            childEnds[child.step] = failed
            enqueue(.event(failed), at: soon(timeout))
        case .retry?, .retryAfter?:
            enqueue(.event(news(.refused(message: "the child could not be reached"), direction)), at: soon(timeout))
        case .timeout?:
            break
        case let fault:
            deliver(done, fault, timeout: timeout)
            if direction == .action { childEnds[child.step] = done }
        }
    }

    /// Plans the signal a signal step waits for, unless it was sent early.
    private mutating func sendSignal(forStep name: String) {
        guard !signalsSentEarly.contains(name), let index = definition.stepIndex(named: name) else { return }
        let step = definition.step(at: index)
        guard let signalName = step.signal else { return }
        let timeout = Double(step.timeout.milliseconds) / 1000
        let rates = faults.rates(for: signalName)
        let succeeded = SagaEvent.signal(signal(for: step, outcome: .succeeded(payload: output(of: name))))
        switch draw(rates) {
        case .fail?:
            let refusal = signal(for: step, outcome: .failed(code: "declined", message: "the outcome was a refusal"))
            enqueue(.event(.signal(refusal)), at: soon(timeout))
        case let fault:
            deliver(succeeded, fault, timeout: timeout)
        }
    }

    private func signal(for step: StepDefinition, outcome: SagaSignal.Outcome) -> SagaSignal {
        SagaSignal(name: step.signal ?? "", key: "sim-\(step.name)", outcome: outcome, receivedAt: .distantPast)
    }

    /// One of the answer kinds by its rate, or `nil` for a plain `succeeded`.
    private mutating func draw(_ rates: SimulationFaults.Rates) -> SimulationFaults.Kind? {
        var roll = Double.random(in: 0..<1, using: &random)
        for kind in SimulationFaults.Rates.answerKinds {
            if roll < rates[kind] { return kind }
            roll -= rates[kind]
        }
        return nil
    }

    /// A time well within a timeout of `timeout` seconds.
    private mutating func soon(_ timeout: Double) -> Date {
        now + seconds(timeout * Double.random(in: 0.001...0.5, using: &random))
    }

    private func seconds(_ value: Double) -> SagaDuration { SagaDuration(milliseconds: Int64((value * 1000).rounded())) }

    /// The output a participant answers a step with: every field the workflow reads from it.
    private func output(of step: String) -> JSONValue { outputShapes[step] ?? .object([:]) }

    // MARK: - Findings along the way

    /// Notes each placeholder of a compensation's payload that renders null: the data it names is
    /// not there (the step whose output it reads timed out, was skipped, or never ran).
    private mutating func checkPlaceholders(of name: String) {
        guard let index = definition.stepIndex(named: name), let template = definition.step(at: index).compensate?.payload,
            let references = try? PayloadTemplate(template).references()
        else { return }
        let saga = machine.saga
        let context = TemplateContext(
            input: saga.input, stepOutputs: saga.stepOutputs, sagaID: saga.id, workflow: saga.workflow, correlationID: saga.correlationID)
        for reference in references where context.resolve(reference) == nil {
            guard case .stepOutput(let source, _) = reference, let state = saga.steps.first(where: { $0.name == source }) else { continue }
            let why =
                state.outcomeUnknown || state.status == .timedOut || (state.status == .compensating && state.output == nil)
                ? "the outcome of \(source) is unknown (an attempt timed out, or was stopped in flight)"
                : "\(source) ended \(state.status.rawValue) with no output"
            nullPlaceholders.append(.init(step: name, placeholder: "{{\(reference)}}", why: why))
        }
    }

    // MARK: - The story

    private var clock: String {
        let milliseconds = Int64((now.timeIntervalSince(start) * 1000).rounded())
        let fraction = String(milliseconds % 1000)
        return "+\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }

    private mutating func describe(_ event: SagaEvent, _ transition: SagaTransition) {
        let what: String =
            switch event {
            case .reply(let reply):
                "\(reply.step) \(reply.direction.rawValue) #\(reply.attempt) answers \(reply.status.name)"
            case .timerFired(let timer) where timer.kind == .sagaDeadline: "the saga's deadline passes"
            case .timerFired(let timer) where timer.kind == .stepTimeout:
                "\(timer.step ?? "?") \(timer.direction?.rawValue ?? "") #\(timer.attempt) times out"
            case .timerFired(let timer): "\(timer.step ?? "?") \(timer.direction?.rawValue ?? "") retry delay over"
            case .signal(let signal):
                if case .failed = signal.outcome { "signal '\(signal.name)' arrives (failed)" } else { "signal '\(signal.name)' arrives" }
            case .child(let report):
                switch report.result {
                case .completed: "the child saga of \(report.step) completes"
                case .failed: "the child saga of \(report.step) fails"
                case .cancelled: "the child saga of \(report.step) is undone"
                case .refused(let message): "the child saga of \(report.step) is refused (\(message))"
                }
            default: event.summary
            }
        var result: String
        switch transition.outcome {
        case .applied: result = machine.saga.status.rawValue
        case .ignored(let reason, _): result = "ignored (\(reason.rawValue))"
        case .rejected(let reason): result = "refused: \(reason)"
        }
        var moves = transition.effects.compactMap { effect -> String? in
            switch effect {
            case .sendCommand(let command): "sends \(command.step) \(command.direction.rawValue) #\(command.attempt)"
            case .startChild(let child): "starts the child of \(child.step)"
            case .compensateChild(let child): "undoes the child of \(child.step)"
            case .recordHistory(let entry) where entry.kind == .stepSkipped: "skips \(entry.step ?? "?")"
            case .recordHistory(let entry) where entry.kind == .retryScheduled: "will retry \(entry.step ?? "?")"
            default: nil
            }
        }
        if moves.count > 4 { moves = Array(moves.prefix(4)) + ["…"] }
        if !moves.isEmpty { result += "; " + moves.joined(separator: ", ") }
        schedule.append("\(clock)  \(what) → \(result)")
    }

    // MARK: - Facts of the definition

    /// For each step, an object with every output field the workflow reads from it (templates and
    /// conditions), so a step that succeeded answers with what later steps look for.
    static func outputShapes(of definition: WorkflowDefinition) -> [String: JSONValue] {
        var paths: [String: [[String]]] = [:]
        for step in definition.allSteps {
            let templates = [step.payload, step.compensate?.payload].compactMap { $0 }
            for template in templates {
                for reference in (try? PayloadTemplate(template).references()) ?? [] {
                    if case .stepOutput(let name, let path) = reference { paths[name, default: []].append(path) }
                }
            }
            for condition in [step.when, step.branch?.when].compactMap({ $0 }) {
                for reference in condition.references {
                    if case .stepOutput(let name, let path) = reference { paths[name, default: []].append(path) }
                }
            }
        }
        var shapes: [String: JSONValue] = [:]
        for step in definition.allSteps {
            var shape = JSONValue.object([:])
            for path in paths[step.name] ?? [] where !path.isEmpty {
                shape = shape.setting(path[...], to: .string("\(step.name)-\(path.joined(separator: "-"))"))
            }
            shapes[step.name] = shape
        }
        return shapes
    }
}

extension JSONValue {
    /// The value with `path` set to `value`, objects made along the way.
    fileprivate func setting(_ path: ArraySlice<String>, to value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        var members = objectValue ?? [:]
        members[key] = (members[key] ?? .object([:])).setting(path.dropFirst(), to: value)
        return .object(members)
    }
}

/// Draws saga input that fits an input schema: integers across many orders of magnitude (so that
/// conditions on amounts go both ways), optional fields present half the time.
enum InputSampler {
    static func sample(_ schema: InputSchema?, using random: inout SeededRandomNumberGenerator) -> JSONValue {
        guard let schema else { return .object([:]) }
        var members: [String: JSONValue] = [:]
        for (name, field) in schema.properties.sorted(by: { $0.key < $1.key }) {
            guard schema.required.contains(name) || Bool.random(using: &random) else { continue }
            members[name] = value(of: field, named: name, using: &random)
        }
        return .object(members)
    }

    private static func value(of field: InputField, named name: String, using random: inout SeededRandomNumberGenerator) -> JSONValue {
        let minimum = field.minimum ?? 0
        switch field.type {
        case .integer:
            let magnitude = pow(10, Double.random(in: 0...9, using: &random)).rounded()
            return .integer(Int64(max(magnitude, minimum.rounded(.up))))
        case .number:
            return .number(max(pow(10, Double.random(in: -2...9, using: &random)), minimum))
        case .string: return .string("\(name)-\(Int.random(in: 1...9_999, using: &random))")
        case .boolean: return .bool(Bool.random(using: &random))
        case .object: return .object([:])
        case .array: return .array([])
        }
    }
}
