import BatonCore
import Foundation

/// Drives one saga through the state machine with a controllable clock and seeded jitter, keeping
/// every command and timer it asked for.
struct SagaHarness {
    var machine: SagaStateMachine
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    var random = SeededRandomNumberGenerator(seed: 7)
    var sent: [StepCommand] = []
    var timers: [SagaTimer] = []
    var transitions: [SagaTransition] = []

    init(_ definition: WorkflowDefinition, input: JSONValue = ["amount": 100], correlationID: String? = "corr-1") {
        let saga = SagaInstance(id: "saga-1", definition: definition, input: input, correlationID: correlationID, now: now)
        // The harness builds the saga from the same definition, so they always match.
        machine = try! SagaStateMachine(definition: definition, saga: saga)
    }

    var saga: SagaInstance { machine.saga }
    var status: SagaStatus { machine.saga.status }
    var lastCommand: StepCommand { sent.last! }

    func step(_ name: String) -> StepState { saga.steps.first { $0.name == name }! }

    @discardableResult
    mutating func handle(_ event: SagaEvent) -> SagaTransition {
        let transition = machine.handle(event, now: now, random: &random)
        transitions.append(transition)
        for effect in transition.effects {
            switch effect {
            case .sendCommand(let command): sent.append(command)
            case .scheduleTimer(let timer): timers.append(timer)
            default: break
            }
        }
        return transition
    }

    @discardableResult
    mutating func start() -> SagaTransition { handle(.start) }

    /// Answers the latest command.
    @discardableResult
    mutating func reply(_ status: ReplyStatus) -> SagaTransition {
        let command = lastCommand
        return handle(.reply(StepReply(step: command.step, direction: command.direction, attempt: command.attempt, status: status)))
    }

    @discardableResult
    mutating func succeed(_ output: JSONValue = [:]) -> SagaTransition { reply(.succeeded(output: output)) }

    /// Answers the latest command sent for `step` (steps of parallel branches are in flight together).
    @discardableResult
    mutating func reply(to step: String, _ status: ReplyStatus) -> SagaTransition {
        let command = sent.last { $0.step == step }!
        return handle(.reply(StepReply(step: step, direction: command.direction, attempt: command.attempt, status: status)))
    }

    @discardableResult
    mutating func succeed(_ step: String, _ output: JSONValue = [:]) -> SagaTransition { reply(to: step, .succeeded(output: output)) }

    /// Moves the clock to the latest timer of a kind and fires it.
    @discardableResult
    mutating func fireLatest(_ kind: SagaTimer.Kind) -> SagaTransition {
        let timer = timers.last { $0.kind == kind }!
        now = max(now, timer.due)
        return handle(.timerFired(timer))
    }

    mutating func advance(_ seconds: TimeInterval) { now += seconds }
}

/// Definitions used by the state machine tests.
enum Workflows {
    static func step(_ name: String, compensated: Bool = true, pivot: Bool = false, attempts: Int = 3) -> StepDefinition {
        StepDefinition(
            name: name,
            participant: "svc",
            action: name,
            payload: ["amount": "{{input.amount}}"],
            timeout: .seconds(10),
            retry: RetryPolicy(maxAttempts: attempts, backoff: .exponential, initial: .seconds(1), maxDelay: .seconds(8), jitter: 0.2),
            compensate: compensated && !pivot
                ? CompensationDefinition(
                    action: "undo-\(name)",
                    payload: ["entry": "{{steps.\(name).output.entry}}"],
                    timeout: .seconds(10),
                    retry: RetryPolicy(maxAttempts: 2, backoff: .fixed, initial: .seconds(1), maxDelay: .seconds(1), jitter: 0)
                ) : nil,
            pivot: pivot
        )
    }

    /// debit → fraud (no compensation) → credit (pivot) → notify → audit, like funds-transfer.
    static let transfer = WorkflowDefinition(
        name: "transfer",
        version: 1,
        deadline: .minutes(5),
        steps: [
            step("debit"), step("fraud", compensated: false), step("credit", pivot: true),
            step("notify", compensated: false), step("audit", compensated: false),
        ]
    )

    /// Three compensatable steps and no pivot.
    static let threeSteps = WorkflowDefinition(name: "three", version: 1, steps: [step("a"), step("b"), step("c")])
}

/// What the validator says of a YAML definition, one line per issue (`step field: message`);
/// empty when it is valid.
func definitionIssues(_ text: String) -> [String] {
    do {
        _ = try WorkflowDefinition.parse(text, format: .yaml, source: "test.yaml")
        return []
    } catch {
        return error.issues.map { "\($0.step ?? "-") \($0.field): \($0.message)" }
    }
}
