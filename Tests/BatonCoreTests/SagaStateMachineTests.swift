import BatonCore
import Foundation
import Testing

@Suite("Saga state machine")
struct SagaStateMachineTests {
    @Test("start: PENDING → PROCESSING, first command sent with its timeout and the saga deadline armed")
    func start() {
        var saga = SagaHarness(Workflows.transfer)
        #expect(saga.status == .pending)
        let transition = saga.start()
        #expect(transition.outcome == .applied)
        #expect(saga.status == .processing)
        #expect(saga.step("debit").status == .running)
        let command = saga.lastCommand
        #expect(command.subject == "baton.cmd.svc.debit")
        #expect(command.attempt == 1)
        #expect(command.payload == ["amount": 100])
        #expect(command.messageID == "saga-1.debit.action.1")
        #expect(command.idempotencyKey == "saga-1.debit.action")
        #expect(command.correlationID == "corr-1")
        #expect(command.deadline == saga.now + 10)
        #expect(command.timeout == SagaDuration(milliseconds: 10_000), "told to the participant as Baton-Timeout")
        #expect(saga.timers.map(\.kind) == [.sagaDeadline, .stepTimeout])
        #expect(saga.timers[0].due == saga.now + 300)
        #expect(transition.history.map(\.kind) == [.sagaStarted, .commandSent])
        #expect(saga.start().outcome == .ignored(.duplicate, "the saga has already started"))
    }

    @Test("every step succeeds: COMPLETED, outputs flow into later payloads")
    func happyPath() {
        let definition = WorkflowDefinition(
            name: "flow",
            version: 1,
            steps: [
                Workflows.step("debit"),
                StepDefinition(
                    name: "credit", participant: "svc", action: "credit",
                    payload: ["from": "{{steps.debit.output.entry}}", "saga": "{{saga.id}}"]),
            ]
        )
        var saga = SagaHarness(definition)
        saga.start()
        saga.succeed(["entry": "e-1"])
        #expect(saga.step("debit").status == .succeeded)
        #expect(saga.step("debit").output == ["entry": "e-1"])
        #expect(saga.lastCommand.payload == ["from": "e-1", "saga": "saga-1"])
        let last = saga.succeed()
        #expect(saga.status == .completed)
        #expect(last.effects.contains(.finished(.completed)))
        #expect(last.effects.contains(.cancelTimer(.init(kind: .stepTimeout, step: "credit", direction: .action))))
        #expect(saga.saga.steps.allSatisfy { $0.status == .succeeded })
    }

    @Test("a business failure before the pivot compensates completed steps in reverse order")
    func compensatesInReverse() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a-1"])
        saga.succeed(["entry": "b-1"])
        saga.reply(.failed(code: "insufficient_funds", message: "balance too low"))
        #expect(saga.status == .compensating)
        #expect(saga.step("c").status == .failed)
        #expect(saga.step("c").error?.code == "insufficient_funds")
        #expect(saga.lastCommand.action == "undo-b")
        #expect(saga.lastCommand.direction == .compensation)
        #expect(saga.lastCommand.payload == ["entry": "b-1"])
        #expect(saga.lastCommand.messageID == "saga-1.b.compensation.1")
        saga.succeed()
        #expect(saga.step("b").status == .compensated)
        #expect(saga.lastCommand.action == "undo-a")
        let last = saga.succeed()
        #expect(saga.status == .failed)
        #expect(last.effects.contains(.finished(.failed)))
        #expect(saga.saga.steps.map(\.status) == [.compensated, .compensated, .failed])
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["b", "a"])
    }

    @Test("steps without a compensation are passed over when compensating")
    func skipsUncompensatable() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d-1"])
        saga.reply(.failed(code: "fraud", message: "score 97"))
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.action == "undo-debit")
        saga.succeed()
        #expect(saga.status == .failed)
    }

    @Test("a retry reply waits by policy, then resends with the same idempotency key")
    func retryReply() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        let transition = saga.reply(.retry(after: nil, message: "db busy"))
        #expect(saga.status == .processing)
        #expect(saga.step("a").status == .running)
        #expect(saga.step("a").retryAt != nil)
        #expect(transition.effects.contains(.cancelTimer(.init(kind: .stepTimeout, step: "a", direction: .action))))
        let backoff = saga.timers.last!
        #expect(backoff.kind == .retryBackoff && backoff.attempt == 1)
        let delay = backoff.due.timeIntervalSince(saga.now)
        #expect(delay >= 0.8 && delay <= 1.0)
        saga.fireLatest(.retryBackoff)
        #expect(saga.lastCommand.attempt == 2)
        #expect(saga.lastCommand.idempotencyKey == "saga-1.a.action")
        #expect(saga.lastCommand.messageID == "saga-1.a.action.2")
        saga.succeed()
        #expect(saga.step("a").status == .succeeded)
    }

    @Test("retry_after from the participant is used, capped at max_delay")
    func retryAfter() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.reply(.retry(after: .seconds(3), message: "rate limited"))
        #expect(saga.timers.last!.due == saga.now + 3)
        saga.fireLatest(.retryBackoff)
        saga.reply(.retry(after: .minutes(10), message: "rate limited"))
        #expect(saga.timers.last!.due == saga.now + 8)
    }

    @Test("a timeout retries; when the budget is spent the timed-out step is compensated too")
    func timeoutThenCompensate() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a-1"])
        for attempt in 1...3 {
            #expect(saga.lastCommand.attempt == attempt)
            saga.fireLatest(.stepTimeout)
            if attempt < 3 {
                #expect(saga.step("b").outcomeUnknown)
                saga.fireLatest(.retryBackoff)
            }
        }
        #expect(saga.status == .compensating)
        #expect(saga.transitions.last!.history.map(\.kind) == [.stepTimedOut, .compensationStarted, .commandSent])
        #expect(saga.step("b").error?.code == "timeout")
        // The timed-out step may have taken effect: it is compensated first, with a null output.
        #expect(saga.lastCommand.action == "undo-b")
        #expect(saga.lastCommand.payload == ["entry": nil])
        saga.succeed()
        #expect(saga.lastCommand.action == "undo-a")
        saga.succeed()
        #expect(saga.status == .failed)
        #expect(saga.saga.steps.map(\.status) == [.compensated, .compensated, .pending])
    }

    @Test("an attempt that timed out keeps the step's outcome unknown through later retry refusals")
    func unknownOutcomeSurvivesRetryReplies() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        saga.reply(.retry(after: nil, message: "busy"))
        #expect(saga.step("b").outcomeUnknown, "attempt 1 may still be applied late")
        saga.fireLatest(.retryBackoff)
        saga.reply(.retry(after: nil, message: "busy"))
        // Budget spent: b is compensated (its compensation fences a late attempt 1), then a.
        #expect(saga.status == .compensating)
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["b"])
        saga.succeed()
        #expect(saga.lastCommand.step == "a")
    }

    @Test("a definitive failed reply after a timeout settles the outcome: the step is not compensated")
    func failedAfterTimeoutIsDefinitive() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        saga.reply(.failed(code: "insufficient_funds", message: "no"))
        #expect(saga.step("b").status == .failed)
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["a"])
    }

    @Test("in_progress moves the timeout forward; the old timer then fires as stale")
    func heartbeat() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        let firstTimer = saga.timers.last!
        saga.advance(8)
        let transition = saga.reply(.inProgress)
        #expect(transition.outcome == .applied)
        #expect(transition.history.map(\.kind) == [.heartbeat])
        let extended = saga.timers.last!
        #expect(extended.due == saga.now + 10)
        #expect(extended.key == firstTimer.key)
        saga.now = firstTimer.due
        let stale = saga.handle(.timerFired(firstTimer))
        guard case .ignored(.stale, _) = stale.outcome else {
            Issue.record("expected the overtaken timeout to be stale, got \(stale.outcome)")
            return
        }
        #expect(saga.step("a").status == .running)
        saga.succeed()
        #expect(saga.step("a").status == .succeeded)
    }

    @Test("a stale or duplicate reply changes nothing and is recorded")
    func staleAndDuplicateReplies() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        let before = saga.saga
        let late = saga.handle(.reply(StepReply(step: "a", direction: .action, attempt: 1, status: .succeeded(output: [:]))))
        #expect(late.outcome == .ignored(.stale, "attempt 2 is current"))
        #expect(late.history.map(\.kind) == [.ignored])
        #expect(late.commands.isEmpty)
        #expect(saga.saga == before)

        saga.succeed()
        let again = saga.handle(.reply(StepReply(step: "a", direction: .action, attempt: 2, status: .succeeded(output: [:]))))
        #expect(again.outcome == .ignored(.duplicate, "this attempt was already settled"))
        let future = saga.handle(.reply(StepReply(step: "b", direction: .action, attempt: 5, status: .succeeded(output: [:]))))
        guard case .ignored(.notApplicable, _) = future.outcome else {
            Issue.record("a reply to an attempt never sent should be ignored")
            return
        }
        let unknown = saga.handle(.reply(StepReply(step: "zzz", direction: .action, attempt: 1, status: .succeeded(output: [:]))))
        #expect(unknown.outcome == .ignored(.notApplicable, "the workflow has no step 'zzz'"))
    }

    @Test("after the pivot, failures are retried forward and a spent budget suspends the saga")
    func afterPivot() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.succeed()
        saga.succeed()  // credit, the pivot
        #expect(saga.lastCommand.step == "notify")
        saga.reply(.failed(code: "bounced", message: "mailbox full"))
        #expect(saga.status == .processing)
        saga.fireLatest(.retryBackoff)
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        saga.reply(.retry(after: nil, message: "smtp down"))
        #expect(saga.status == .suspended)
        #expect(saga.saga.suspensionReason?.contains("after the pivot") == true)
        #expect(saga.step("notify").status == .timedOut, "attempt 2 timed out, so its outcome stays unknown")
        #expect(saga.sent.allSatisfy { $0.direction == .action }, "nothing is compensated past a succeeded pivot")

        #expect(saga.saga.lastError == "notify: bounced: mailbox full", "the failure that led to the suspension")

        // The operator retries with a fresh budget, and the saga completes.
        let retried = saga.handle(.operatorAction(.retry(reason: "smtp is back")))
        #expect(retried.outcome == .applied)
        #expect(saga.status == .processing)
        #expect(saga.saga.lastError == nil, "moving forward again, the failure is behind it")
        #expect(saga.lastCommand.attempt == 4)
        saga.succeed()
        saga.succeed()
        #expect(saga.status == .completed)
    }

    @Test("a pivot that times out for good suspends (its outcome is unknown); the operator can compensate")
    func pivotOutcomeUnknown() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.succeed()
        for _ in 1...3 {
            saga.fireLatest(.stepTimeout)
            if saga.status == .processing { saga.fireLatest(.retryBackoff) }
        }
        #expect(saga.status == .suspended)
        #expect(saga.step("credit").status == .timedOut)
        #expect(saga.saga.suspensionReason?.contains("outcome is unknown") == true)
        #expect(!saga.sent.contains { $0.direction == .compensation })

        let compensate = saga.handle(.operatorAction(.compensate(reason: "bank confirms the credit never posted")))
        #expect(compensate.outcome == .applied)
        #expect(saga.status == .compensating)
        #expect(saga.step("credit").status == .failed)
        #expect(saga.lastCommand.action == "undo-debit")
        saga.succeed()
        #expect(saga.status == .failed)
    }

    @Test("a pivot that fails as a business failure compensates the steps before it")
    func pivotFails() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.succeed()
        saga.reply(.failed(code: "account_closed", message: "receiver closed"))
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.action == "undo-debit")
    }

    @Test("a failed compensation suspends; skip moves on, resolve ends FAILED")
    func compensationFailure() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        saga.succeed(["entry": "b"])
        saga.reply(.failed(code: "x", message: "boom"))
        saga.reply(.failed(code: "ledger_locked", message: "account frozen"))
        #expect(saga.status == .suspended)
        #expect(saga.step("b").status == .compensating)
        #expect(saga.saga.direction == .compensation)
        // The error stays why the saga is failing; the suspension has its own reason.
        #expect(saga.saga.lastError == "c: boom")
        #expect(saga.saga.suspensionReason != nil && saga.saga.suspensionReason != saga.saga.lastError)

        #expect(
            saga.handle(.operatorAction(.skip(step: "a", reason: "wrong"))).outcome
                == .rejected("only the step the saga is stuck on ('b') can be skipped, not 'a'"))
        #expect(
            saga.handle(.operatorAction(.skip(step: "b", reason: " "))).outcome
                == .rejected("an operator action needs a reason for the audit history"))
        let skipped = saga.handle(.operatorAction(.skip(step: "b", reason: "refunded by hand, ticket 42")))
        #expect(skipped.outcome == .applied)
        #expect(skipped.history.map(\.kind).contains(.operatorAction))
        #expect(saga.step("b").status == .skipped)
        #expect(saga.lastCommand.action == "undo-a")
        saga.reply(.retry(after: nil, message: "busy"))
        saga.fireLatest(.retryBackoff)
        saga.fireLatest(.stepTimeout)
        #expect(saga.status == .suspended, "two compensation attempts spent the budget")
        let resolved = saga.handle(.operatorAction(.resolve(reason: "fixed in the ledger by ops")))
        #expect(resolved.outcome == .applied)
        #expect(saga.status == .failed)
        #expect(saga.step("a").status == .skipped)
    }

    @Test("retrying a suspended compensation starts a fresh budget")
    func retryCompensation() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        saga.reply(.failed(code: "x", message: "no"))
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        saga.fireLatest(.stepTimeout)
        #expect(saga.status == .suspended)
        saga.handle(.operatorAction(.retry(reason: "ledger is back")))
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.attempt == 3)
        #expect(saga.lastCommand.idempotencyKey == "saga-1.a.compensation")
        saga.fireLatest(.stepTimeout)
        #expect(saga.status == .compensating, "the new budget allows a second attempt")
        saga.fireLatest(.retryBackoff)
        saga.succeed()
        #expect(saga.status == .failed)
        #expect(saga.step("a").status == .compensated)
        // What a FAILED saga shows is why it failed, not the compensation's troubles on the way.
        #expect(saga.saga.lastError == "b: no")
    }

    @Test("cancel before the pivot compensates; the running step's outcome is unknown, so it is compensated too")
    func cancelWhileRunning() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        let cancel = saga.handle(.cancel(reason: "customer asked", requestedBy: "support"))
        #expect(cancel.outcome == .applied)
        #expect(saga.status == .compensating)
        #expect(saga.saga.cancellation == SagaCancellation(reason: "customer asked", requestedBy: "support", at: saga.now))
        #expect(saga.step("b").status == .compensating)
        #expect(saga.step("b").error?.code == "interrupted")
        #expect(saga.lastCommand.action == "undo-b")
        #expect(cancel.effects.contains(.cancelTimer(.init(kind: .stepTimeout, step: "b", direction: .action))))
        // The cancelled attempt's late reply is stale.
        let late = saga.handle(.reply(StepReply(step: "b", direction: .action, attempt: 1, status: .succeeded(output: [:]))))
        guard case .ignored = late.outcome else {
            Issue.record("late reply applied")
            return
        }
        saga.succeed()
        let last = saga.succeed()
        #expect(saga.status == .cancelled, "a cancelled saga ends CANCELLED once compensated, not FAILED")
        #expect(last.history.last?.kind == .sagaCancelled)
        #expect(last.history.last?.detail == "saga CANCELLED: customer asked")
        #expect(last.effects.contains(.finished(.cancelled)))
        #expect(saga.handle(.cancel(reason: "again")).outcome == .rejected("the saga is already CANCELLED"))
    }

    @Test("cancel during a retry wait after a refused attempt does not compensate that step")
    func cancelDuringBackoff() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed(["entry": "a"])
        saga.reply(.retry(after: nil, message: "busy"))
        let cancel = saga.handle(.cancel(reason: "stop"))
        #expect(cancel.effects.contains(.cancelTimer(.init(kind: .retryBackoff, step: "b", direction: .action))))
        #expect(saga.step("b").status == .failed)
        #expect(saga.lastCommand.action == "undo-a")
    }

    @Test("cancel is refused past the pivot, and while the pivot is in flight")
    func cancelRefusedAtPivot() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.succeed()
        let inFlight = saga.handle(.cancel(reason: "stop"))
        #expect(inFlight.outcome == .rejected("the pivot 'credit' is in flight and its outcome decides the saga"))
        #expect(inFlight.history.map(\.kind) == [.cancelRefused])
        saga.succeed()
        #expect(saga.handle(.cancel(reason: "stop")).outcome == .rejected("the saga is past its pivot 'credit' and can only move forward"))
        #expect(saga.status == .processing)
    }

    @Test("cancel of a PENDING saga ends it CANCELLED at once; of a compensating one is ignored")
    func cancelEdges() {
        var pending = SagaHarness(Workflows.threeSteps)
        #expect(pending.handle(.cancel(reason: "never mind")).outcome == .applied)
        #expect(pending.status == .cancelled)
        #expect(pending.saga.cancellation?.reason == "never mind")
        #expect(pending.sent.isEmpty)

        var compensating = SagaHarness(Workflows.threeSteps)
        compensating.start()
        compensating.succeed(["entry": "a"])
        compensating.reply(.failed(code: "x", message: "y"))
        #expect(compensating.handle(.cancel(reason: "again")).outcome == .ignored(.notApplicable, "the saga is already compensating"))
    }

    @Test("a cancelled saga whose compensation suspends ends CANCELLED when the operator settles it; a failed one FAILED")
    func cancelledThroughSuspension() {
        for cancelled in [true, false] {
            var saga = SagaHarness(Workflows.threeSteps)
            saga.start()
            saga.succeed(["entry": "a"])
            if cancelled {
                saga.handle(.cancel(reason: "customer asked"))
            } else {
                saga.reply(.failed(code: "declined", message: "no"))
            }
            #expect(saga.lastCommand.direction == .compensation)
            saga.reply(.failed(code: "ledger_closed", message: "the account is closed"))
            #expect(saga.status == .suspended)
            saga.handle(.operatorAction(.resolve(reason: "refunded by hand")))
            #expect(saga.status == (cancelled ? .cancelled : .failed))
            #expect((saga.saga.cancellation != nil) == cancelled)
        }
    }

    @Test("the saga deadline is no cancel: a saga compensated for it ends FAILED")
    func deadlineEndsFailed() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.fireLatest(.sagaDeadline)
        saga.succeed()
        #expect(saga.status == .failed)
        #expect(saga.saga.cancellation == nil)
    }

    @Test("the saga deadline compensates before the pivot and is ignored after it")
    func deadline() {
        var early = SagaHarness(Workflows.transfer)
        early.start()
        early.succeed(["entry": "d"])
        let fired = early.fireLatest(.sagaDeadline)
        #expect(fired.outcome == .applied)
        #expect(early.status == .compensating)
        #expect(early.step("fraud").status == .timedOut)
        #expect(early.lastCommand.action == "undo-debit")

        var late = SagaHarness(Workflows.transfer)
        late.start()
        late.succeed(["entry": "d"])
        late.succeed()
        late.succeed()
        let ignored = late.fireLatest(.sagaDeadline)
        guard case .ignored(.notApplicable, let why) = ignored.outcome else {
            Issue.record("deadline after the pivot should be ignored")
            return
        }
        #expect(why.contains("past its pivot"))
        #expect(late.status == .processing)
    }

    @Test("leaving PROCESSING disarms the saga deadline")
    func deadlineDisarmed() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        let transition = saga.reply(.failed(code: "no_funds", message: "empty"))
        #expect(transition.effects.contains(.cancelTimer(.init(kind: .sagaDeadline, step: nil, direction: nil))))
        #expect(saga.status == .failed)
    }

    @Test("terminal sagas absorb every event")
    func terminalAbsorbs() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        saga.succeed()
        saga.succeed()
        saga.succeed()
        #expect(saga.status == .completed)
        let before = saga.saga
        let events: [SagaEvent] = [
            .start, .cancel(reason: "x"), .operatorAction(.retry(reason: "x")),
            .reply(StepReply(step: "c", direction: .action, attempt: 1, status: .failed(code: "x", message: "y"))),
            .timerFired(saga.timers.last!),
        ]
        for event in events {
            let transition = saga.handle(event)
            #expect(transition.commands.isEmpty)
            #expect(!transition.effects.contains { if case .scheduleTimer = $0 { true } else { false } })
        }
        #expect(saga.saga == before)
    }

    @Test("operator actions apply only to SUSPENDED sagas")
    func operatorNeedsSuspended() {
        var saga = SagaHarness(Workflows.threeSteps)
        saga.start()
        #expect(
            saga.handle(.operatorAction(.resolve(reason: "x"))).outcome
                == .rejected("operator actions apply to SUSPENDED sagas; this one is PROCESSING"))
    }

    @Test("resolving a saga suspended after the pivot completes it, skipping what was left")
    func resolveForward() {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d"])
        saga.succeed()
        saga.succeed()
        saga.reply(.failed(code: "x", message: "y"))
        saga.fireLatest(.retryBackoff)
        saga.reply(.failed(code: "x", message: "y"))
        saga.fireLatest(.retryBackoff)
        saga.reply(.failed(code: "x", message: "y"))
        #expect(saga.status == .suspended)
        saga.handle(.operatorAction(.resolve(reason: "notified by phone")))
        #expect(saga.status == .completed)
        #expect(saga.saga.steps.map(\.status) == [.succeeded, .succeeded, .succeeded, .skipped, .skipped])
    }

    @Test("a definition other than the saga's is refused")
    func definitionMismatch() {
        let saga = SagaInstance(id: "s", definition: Workflows.threeSteps, input: [:], now: Date())
        #expect(throws: DefinitionMismatchError.self) { try SagaStateMachine(definition: Workflows.transfer, saga: saga) }
        var renamed = Workflows.threeSteps
        renamed.steps[1].name = "b2"
        #expect(throws: DefinitionMismatchError.self) { try SagaStateMachine(definition: renamed, saga: saga) }
    }

    @Test("a saga state survives a JSON round trip (it is stored)")
    func codable() throws {
        var saga = SagaHarness(Workflows.transfer)
        saga.start()
        saga.succeed(["entry": "d", "n": 1.5])
        let data = try JSONEncoder().encode(saga.saga)
        #expect(try JSONDecoder().decode(SagaInstance.self, from: data) == saga.saga)
    }
}
