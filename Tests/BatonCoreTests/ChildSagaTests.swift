import BatonCore
import Foundation
import Testing

@Suite("Workflow language: child sagas")
struct ChildSagaTests {
    /// reserve → open-account (a child saga of account-opening) → charge (the pivot).
    static let text = """
        name: parent
        version: 1
        steps:
          - name: reserve
            participant: inventory
            action: reserve
            compensate: { action: release }
          - name: open-account
            workflow: account-opening
            input: { customer: "{{input.customer}}", reservation: "{{steps.reserve.output.id}}" }
            timeout: 1m
            retry: { max_attempts: 2, initial: 1s, jitter: 0 }
          - name: charge
            participant: payments
            action: charge
            pivot: true
            payload: { account: "{{steps.open-account.output.steps.open.account}}" }
        """

    static let definition = try! WorkflowDefinition.parse(text, format: .yaml)

    static func report(_ result: ChildReport.Result, direction: StepDirection? = nil) -> SagaEvent {
        .child(ChildReport(step: "open-account", childID: "child-1", result: result, direction: direction))
    }

    /// A parent at the child step, with its reservation made.
    static func atChild() -> SagaHarness {
        var saga = SagaHarness(definition, input: ["customer": "c-1"])
        saga.start()
        saga.succeed(["id": "r-9"])
        return saga
    }

    // MARK: - Reading and checking

    @Test("a child step names a workflow and its input; a command's fields and starting itself are refused")
    func reading() {
        let step = Self.definition.steps[1]
        #expect(step.workflow == "account-opening" && !step.sendsCommand)
        #expect(step.payload == ["customer": "{{input.customer}}", "reservation": "{{steps.reserve.output.id}}"])
        #expect(Self.definition.participants == ["inventory", "payments"])
        let head = "name: a\nversion: 1\nsteps:\n"
        #expect(
            definitionIssues(head + "  - { name: c, workflow: b, participant: x, pivot: true, payload: {} }\n") == [
                "c participant: a child step starts a saga of its workflow and sends no command; leave participant out",
                "c payload: a child step starts a saga of its workflow and sends no command; leave payload out; the child's input is `input`",
                "c pivot: a child step starts a saga of its workflow and sends no command; leave pivot out",
            ])
        #expect(
            definitionIssues(head + "  - { name: c, workflow: a }\n") == [
                "c workflow: a workflow cannot start a saga of itself (it would never end)"
            ]
        )
        #expect(
            definitionIssues(head + "  - { name: c, participant: x, action: y, input: {} }\n") == [
                "c input: only a child step (workflow: …) has an input; a step's command has a payload"
            ])
        #expect(
            definitionIssues(head + "  - { name: c, workflow: b, input: { x: '{{steps.d.output}}' } }\n").first?.hasPrefix("c input.x:")
                == true)
    }

    // MARK: - Running

    @Test("the child step asks for the child saga with its rendered input, and its completion is the step's success and output")
    func startsAndCompletes() {
        var saga = Self.atChild()
        let asked = saga.transitions.last!
        #expect(
            asked.effects.contains(
                .startChild(ChildSaga(step: "open-account", workflow: "account-opening", input: ["customer": "c-1", "reservation": "r-9"])))
        )
        #expect(asked.history.map(\.kind) == [.stepSucceeded, .childRequested])
        #expect(saga.step("open-account").status == .running && saga.step("open-account").awaitingReply)
        let output: JSONValue = ["saga_id": "child-1", "steps": ["open": ["account": "acc-1"]]]
        saga.handle(Self.report(.completed(output: output)))
        #expect(saga.step("open-account").status == .succeeded && saga.step("open-account").output == output)
        #expect(saga.lastCommand.step == "charge" && saga.lastCommand.payload == ["account": "acc-1"])
        // A second report of the same end changes nothing.
        #expect(saga.handle(Self.report(.completed(output: output))).outcome != .applied)
    }

    @Test("a child that failed fails the step (it undid itself), and the steps before are compensated")
    func childFailed() {
        var saga = Self.atChild()
        saga.handle(Self.report(.failed(message: "kyc_rejected")))
        #expect(saga.step("open-account").status == .failed && saga.step("open-account").error?.code == "child_failed")
        #expect(saga.lastCommand.step == "reserve" && saga.lastCommand.direction == .compensation)
        #expect(!saga.transitions.last!.effects.contains { if case .compensateChild = $0 { true } else { false } })
        saga.succeed()
        #expect(saga.status == .failed)
    }

    @Test("a child that could not start fails the step with child_refused")
    func childRefused() {
        var saga = Self.atChild()
        saga.handle(Self.report(.refused(message: "no workflow named 'account-opening' is registered"), direction: .action))
        #expect(saga.step("open-account").error?.code == "child_refused")
        #expect(saga.status == .compensating)
    }

    @Test("a completed child is compensated with the step: undone, its step is COMPENSATED; a refusal to undo suspends the parent")
    func compensatesTheChild() {
        var saga = Self.atChild()
        saga.handle(Self.report(.completed(output: ["saga_id": "child-1"])))
        saga.reply(.failed(code: "declined", message: "card declined"))
        let asked = saga.transitions.last!
        #expect(asked.effects.contains { if case .compensateChild(let child) = $0 { child.step == "open-account" } else { false } })
        #expect(saga.step("open-account").status == .compensating)
        // The child's completion, reported late, is not its undoing.
        #expect(saga.handle(Self.report(.completed(output: [:]))).outcome != .applied)
        saga.handle(Self.report(.cancelled(message: "compensated for its parent")))
        #expect(saga.step("open-account").status == .compensated)
        #expect(saga.lastCommand.step == "reserve" && saga.lastCommand.direction == .compensation)

        var refused = Self.atChild()
        refused.handle(Self.report(.completed(output: [:])))
        refused.reply(.failed(code: "declined", message: "card declined"))
        refused.handle(Self.report(.refused(message: "the saga is past its pivot 'open'"), direction: .compensation))
        #expect(refused.status == .suspended)
        #expect(refused.saga.suspensionReason?.contains("child_refused") == true)
    }

    @Test("no news within the timeout asks again (the same child), then the step is TIMED_OUT and its child compensated")
    func timeouts() {
        var saga = Self.atChild()
        saga.fireLatest(.stepTimeout)
        #expect(saga.step("open-account").outcomeUnknown)
        let retried = saga.fireLatest(.retryBackoff)
        #expect(retried.effects.contains { if case .startChild(let child) = $0 { child.step == "open-account" } else { false } })
        saga.fireLatest(.stepTimeout)
        #expect(saga.step("open-account").status == .compensating)
        #expect(saga.transitions.last!.effects.contains { if case .compensateChild = $0 { true } else { false } })
    }

    @Test("cancelling the parent while its child runs compensates the child")
    func cancelParent() {
        var saga = Self.atChild()
        let cancel = saga.handle(.cancel(reason: "customer asked", requestedBy: "ops"))
        #expect(cancel.history.contains { $0.kind == .stepInterrupted && $0.step == "open-account" })
        #expect(cancel.effects.contains { if case .compensateChild = $0 { true } else { false } })
        saga.handle(Self.report(.cancelled(message: "cancelled")))
        saga.succeed()
        #expect(saga.status == .cancelled)
    }

    // MARK: - The child's side

    static let child = WorkflowDefinition(
        name: "account-opening", version: 1,
        steps: [Workflows.step("open"), Workflows.step("welcome", compensated: false)])

    static func child(pivot: Bool = false) -> SagaHarness {
        let definition = pivot ? WorkflowDefinition(name: "with-pivot", version: 1, steps: [Workflows.step("open", pivot: true)]) : child
        var harness = SagaHarness(definition)
        let saga = SagaInstance(
            id: "child-1", definition: definition, input: [:], parent: SagaParent(sagaID: "saga-1", step: "open-account", depth: 1),
            now: harness.now)
        harness.machine = try! SagaStateMachine(definition: definition, saga: saga)
        return harness
    }

    @Test("a completed child that its parent compensates undoes its steps and ends CANCELLED; past its pivot it refuses")
    func completedChildUndoes() {
        var child = Self.child()
        child.start()
        child.succeed(["entry": "e-1"])
        child.succeed()
        #expect(child.status == .completed)
        let undo = child.handle(.parentCompensates(reason: "the charge was declined"))
        #expect(undo.outcome == .applied && child.status == .compensating)
        #expect(child.lastCommand.step == "open" && child.lastCommand.direction == .compensation)
        child.succeed()
        #expect(child.status == .cancelled)
        #expect(child.saga.cancellation?.reason.hasPrefix("parent saga saga-1 compensates its step 'open-account'") == true)
        #expect(child.handle(.parentCompensates(reason: "again")).outcome != .applied)

        var pivoted = Self.child(pivot: true)
        pivoted.start()
        pivoted.succeed()
        guard case .rejected(let reason) = pivoted.handle(.parentCompensates(reason: "declined")).outcome else {
            Issue.record("a child past its pivot was undone")
            return
        }
        #expect(reason.contains("past its pivot"))
        #expect(pivoted.status == .completed)
    }

    @Test("a child not yet started ends CANCELLED at once; a saga with no parent refuses")
    func pendingAndOrphan() {
        var child = Self.child()
        child.handle(.parentCompensates(reason: "declined"))
        #expect(child.status == .cancelled)
        var orphan = SagaHarness(Self.child)
        orphan.start()
        #expect(orphan.handle(.parentCompensates(reason: "x")).outcome == .rejected("the saga was not started by a parent saga"))
    }
}
