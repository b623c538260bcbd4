import BatonCore
import Foundation
import PropertyBased
import Testing

/// Conditions (`when:`) and failure handlers (`on_failure:`): how they read, how they are checked,
/// and what the state machine does with them.
@Suite("Workflow language: conditions and failure handlers")
struct WorkflowLanguageTests {
    // MARK: - Conditions, as text

    @Test(
        "conditions parse to one normal form, which is what the hash covers",
        arguments: [
            ("input.amount >= 100000", "input.amount >= 100000"),
            ("  input.amount>=100000 ", "input.amount >= 100000"),
            ("(input.express)", "input.express"),
            ("not (input.ok)", "not input.ok"),
            ("input.a == 1 or input.b == 2 and input.c == 3", "input.a == 1 or input.b == 2 and input.c == 3"),
            ("(input.a == 1 or input.b == 2) and input.c == 3", "(input.a == 1 or input.b == 2) and input.c == 3"),
            ("not (input.a == 1 and exists(input.b))", "not (input.a == 1 and exists(input.b))"),
            (#"steps.fraud-check.error.code == "fraud_suspected""#, "steps.fraud-check.error.code == 'fraud_suspected'"),
            (#"input.memo == "it's""#, #"input.memo == "it's""#),
            ("input.delta > -2.5", "input.delta > -2.5"),
            ("steps.kyc.status != 'SKIPPED'", "steps.kyc.status != 'SKIPPED'"),
            ("input.coupon == null", "input.coupon == null"),
        ])
    func normalForm(_ text: String, _ normal: String) throws {
        let condition = try StepCondition(parsing: text)
        #expect(condition.description == normal)
        #expect(try StepCondition(parsing: normal) == condition || StepCondition(parsing: normal).description == normal)
    }

    @Test(
        "a malformed condition is refused with a reason",
        arguments: [
            ("", "is empty"),
            ("input.amount >", "ends where a reference or a value was expected"),
            ("input.amount >= 1 input.b", "unexpected 'input.b' after a complete condition"),
            ("(input.a", "expected ')'"),
            ("exists input.a", "expected '(' after exists"),
            ("5", "the literal 5 needs a comparison"),
            ("input.a = 1", "'=' at character 9 is not an operator"),
            ("'open", "is not closed"),
            ("amount > 1", "a reference starts with input or steps"),
            ("steps.debit.entry", "a step reference is"),
            ("input..a", "empty name or path part"),
            ("input.a == 1e999", "is not a number"),
            ("input.a ; drop", "';' at character 9 is not part of a condition"),
        ])
    func malformed(_ text: String, _ message: String) {
        #expect {
            try StepCondition(parsing: text)
        } throws: { error in
            (error as? ConditionError)?.description.contains(message) == true
        }
    }

    @Test("random text never traps the condition reader; what it accepts reads back to the same normal form")
    func randomText() async {
        // Pieces of the language and of what is not: any sequence of them is hostile input.
        let pieces = [
            "input.amount", "steps.a.status", "steps.b-c.output.x", "steps.a.error.code", "exists(", "exists", "(", ")", "not ", " and ",
            " or ", "==", "!=", "<", "<=", ">", ">=", "=", "!", "'x'", "\"y\"", "'", "\"", "-", "1", "-2.5", "1e999", "1e3", "true",
            "false", "null", " ", ".", "..", "input", "steps", "é", "\u{0}", ";", "{{", "}}",
        ]
        await propertyCheck(count: 2000, input: Gen.int(in: 0..<pieces.count).array(of: 0...40)) { indices in
            let text = indices.map { pieces[$0] }.joined()
            guard let condition = try? StepCondition(parsing: text) else { return }
            let normal = condition.description
            guard let again = try? StepCondition(parsing: normal) else {
                Issue.record("'\(text)' parsed, but its normal form '\(normal)' does not")
                return
            }
            #expect(again.description == normal, "'\(text)' → '\(normal)' → '\(again.description)'")
            // Evaluating it cannot trap either, whatever the data.
            _ = condition.holds(input: ["amount": 5, "x": [1, "a"]]) { _ in StepState(name: "a") }
        }
    }

    @Test("conditions are bounded in length and nesting before anything recurses on them")
    func bounded() {
        #expect(throws: ConditionError.self) { try StepCondition(parsing: String(repeating: "not ", count: 300) + "input.a") }
        #expect(throws: ConditionError.self) {
            try StepCondition(parsing: String(repeating: "(", count: 17) + "input.a" + String(repeating: ")", count: 17))
        }
        #expect((try? StepCondition(parsing: String(repeating: "(", count: 15) + "input.a" + String(repeating: ")", count: 15))) != nil)
        let long = (0..<200).map { "input.f\($0) == 1" }.joined(separator: " or ")
        #expect(throws: ConditionError.self) { try StepCondition(parsing: long) }
    }

    @Test("evaluation: comparisons by JSON value, missing reads as null, unordered values compare false")
    func evaluation() throws {
        let input: JSONValue = ["amount": 150_000, "country": "DE", "express": true, "ratio": 0.5, "coupon": .null]
        let fraud = {
            var state = StepState(name: "fraud")
            state.status = .failed
            state.error = StepError(code: "fraud_suspected", message: "score 91", direction: .action, attempt: 1)
            return state
        }()
        func holds(_ text: String) throws -> Bool {
            try StepCondition(parsing: text).holds(input: input) { $0 == "fraud" ? fraud : nil }
        }
        #expect(try holds("input.amount >= 100000"))
        #expect(try holds("input.amount == 150000.0"))
        #expect(try !holds("input.amount < 100000"))
        #expect(try holds("input.country == 'DE' and input.express"))
        #expect(try holds("input.country < 'FR'"))
        #expect(try holds("input.ratio <= 0.5 and input.ratio > 0"))
        #expect(try !holds("input.country > 5"))
        #expect(try !holds("input.missing > 5"))
        #expect(try holds("input.missing == null and not exists(input.missing) and not exists(input.coupon)"))
        #expect(try holds("exists(input.amount)"))
        #expect(try holds("steps.fraud.status == 'FAILED' and steps.fraud.error.code == 'fraud_suspected'"))
        #expect(try !holds("steps.other.status == 'FAILED'"))
        #expect(try holds("not steps.fraud.output.ok"))
    }

    // MARK: - Validation

    static let schema = """
        name: demo
        version: 1
        input:
          properties:
            amount: { type: integer }
            country: { type: string }
            express: { type: boolean }
        """

    @Test("every condition and failure-handler rule is checked, naming the step and the field")
    func validation() {
        let text =
            Self.schema + """

                steps:
                  - { name: debit, participant: ledger, action: debit, when: "input.amount > 'many'" }
                  - { name: score, participant: fraud, action: score, when: "steps.score.status == 'SUCCEEDED'" }
                  - { name: credit, participant: ledger, action: credit, pivot: true, when: input.express }
                  - { name: extra, participant: ledger, action: fee, when: "steps.notify.status == 'SUCCEEDED' or input.nope == 1" }
                  - { name: tag, participant: ledger, action: tag, when: "steps.debit.status == 'DONE' or input.express > true" }
                  - { name: broken, participant: ledger, action: tag, when: "input.amount >" }
                on_failure:
                  - { name: notify, participant: notifications, action: send, pivot: true }
                  - { name: alert, participant: notifications, action: send, compensate: { action: unsend } }
                  - { name: debit, participant: notifications, action: send }
                """
        let found = definitionIssues(text)
        let expected = [
            "debit when: input.amount > 'many': input.amount is an integer; compare it with a number",
            "score when: steps.score.status: a step's condition is decided before it runs, so it cannot read the step itself",
            "credit when: the pivot is the point of no return and cannot be conditional: put the condition on the steps around it",
            "extra when: steps.notify.status: 'notify' is a failure handler, which runs only once the saga has failed and been compensated",
            "extra when: input.nope: the input schema has no field 'nope' (it has: amount, country, express)",
            "tag when: steps.debit.status == 'DONE': a step's status is one of PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, COMPENSATING, COMPENSATED, SKIPPED",
            "tag when: input.express > true: a boolean has no order; use == or !=",
            "broken when: ends where a reference or a value was expected",
            "notify pivot: a failure handler runs after the saga has failed and cannot be the pivot",
            "alert compensate: a failure handler is never compensated; leave compensate out",
            "debit name: another step is already named 'debit'",
        ]
        for message in expected { #expect(found.contains(message), "missing: \(message)\nfound: \(found)") }
        #expect(found.count == expected.count, "\(found)")
    }

    @Test("failure handlers see every step and the handlers before them")
    func handlerVisibility() throws {
        let text =
            Self.schema + """

                steps:
                  - { name: debit, participant: ledger, action: debit }
                  - { name: score, participant: fraud, action: score }
                on_failure:
                  - name: notify
                    participant: notifications
                    action: send
                    payload: { entry: "{{steps.debit.output.entry_id}}" }
                  - name: alert
                    participant: notifications
                    action: send
                    when: "steps.score.error.code == 'fraud_suspected' and steps.notify.status == 'SUCCEEDED'"
                    payload: { sent: "{{steps.notify.output.id}}" }
                """
        let definition = try WorkflowDefinition.parse(text, format: .yaml)
        #expect(definition.failureHandlers.map(\.name) == ["notify", "alert"])
        #expect(definition.allSteps.count == 4)
        #expect(definition.stepIndex(named: "alert") == 3)
        #expect(definition.isFailureHandler(2) && !definition.isFailureHandler(1))
        #expect(
            definitionIssues(text.replacingOccurrences(of: "on_failure:\n", with: "on_failure: []\nx:\n")).contains {
                $0.contains("on_failure")
            })
    }

    @Test("definitions without the new fields keep the canonical form, and so the hash, they had before")
    func oldDefinitionsKeepTheirHash() throws {
        let definition = try WorkflowDefinition.parse(
            Self.schema + "\nsteps:\n  - { name: debit, participant: ledger, action: debit }\n", format: .yaml)
        let canonical = String(decoding: definition.canonicalJSON, as: UTF8.self)
        #expect(!canonical.contains("onFailure") && !canonical.contains("\"when\""))
        let conditional = try WorkflowDefinition.parse(
            Self.schema + "\nsteps:\n  - { name: debit, participant: ledger, action: debit, when: \"(input.amount>5)\" }\n",
            format: .yaml)
        #expect(String(decoding: conditional.canonicalJSON, as: UTF8.self).contains(#""when":"input.amount > 5""#))
        let decoded = try JSONDecoder().decode(WorkflowDefinition.self, from: conditional.canonicalJSON)
        #expect(decoded == conditional)
    }

    @Test(
        "definitions shipped before the language grew keep their hash, so the sagas that pinned them still run",
        arguments: [
            // As shipped before `baton workflows simulate` led to their next versions.
            ("Fixtures/onboarding-v1.yaml", "fc7622e50522"), ("Fixtures/funds-transfer-v2.yaml", "85a423082b20"),
            ("Fixtures/checkout-v2.yaml", "f3eb3f7d7028"), ("Fixtures/wallet-topup-v1.yaml", "c7fbf55b47bf"),
            ("Fixtures/wallet-withdrawal-v1.yaml", "13d152c35453"),
        ])
    func shippedHashes(_ path: String, _ hash: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: path)
        let definition = try WorkflowDefinition.parse(try String(contentsOf: url, encoding: .utf8), format: .yaml)
        #expect(definition.contentHash.hasPrefix(hash), "\(path): \(definition.contentHash)")
    }

    // MARK: - The state machine

    static func handler(_ name: String, when: String? = nil, attempts: Int = 2) -> StepDefinition {
        StepDefinition(
            name: name, participant: "notifications", action: name, payload: ["why": "{{steps.debit.output.entry}}"],
            timeout: .seconds(5),
            retry: RetryPolicy(maxAttempts: attempts, backoff: .fixed, initial: .seconds(1), maxDelay: .seconds(1), jitter: 0),
            when: when.map { try! StepCondition(parsing: $0) })
    }

    /// debit → fraud → credit (pivot) → notify, with a conditional bonus step and two failure handlers.
    static let transfer = WorkflowDefinition(
        name: "transfer", version: 1,
        steps: [
            Workflows.step("debit"),
            {
                var bonus = Workflows.step("bonus")
                bonus.when = try! StepCondition(parsing: "input.amount >= 1000")
                return bonus
            }(),
            Workflows.step("fraud", compensated: false),
            Workflows.step("credit", pivot: true),
            Workflows.step("notify", compensated: false),
        ],
        failureHandlers: [
            handler("notify-failure"),
            handler("fraud-alert", when: "steps.fraud.error.code == 'fraud_suspected'"),
        ])

    @Test("a step whose condition does not hold is SKIPPED with the condition in the history, and never compensated")
    func skippedStep() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 100])
        saga.start()
        let afterDebit = saga.succeed(["entry": "d-1"])
        #expect(saga.step("bonus").status == .skipped)
        #expect(saga.lastCommand.step == "fraud")
        let skipped = afterDebit.history.first { $0.kind == .stepSkipped }
        #expect(skipped?.step == "bonus")
        #expect(skipped?.detail == "skipped: its condition does not hold (when: input.amount >= 1000)")
        saga.reply(.failed(code: "declined", message: "no"))
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["debit"])
    }

    @Test("a step whose condition holds runs")
    func conditionHolds() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 5000])
        saga.start()
        saga.succeed(["entry": "d-1"])
        #expect(saga.lastCommand.step == "bonus")
        #expect(saga.step("bonus").status == .running)
    }

    @Test("failure handlers run in order after the compensation; a handler whose condition fails is SKIPPED; the saga ends FAILED")
    func failureHandlersAfterCompensation() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 100])
        saga.start()
        saga.succeed(["entry": "d-1"])
        saga.reply(.failed(code: "declined", message: "card declined"))
        #expect(saga.lastCommand.step == "debit" && saga.lastCommand.direction == .compensation)
        let compensated = saga.succeed()
        #expect(compensated.history.map(\.kind) == [.stepCompensated, .failureHandlersStarted, .commandSent])
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.step == "notify-failure")
        #expect(saga.lastCommand.direction == .action)
        #expect(saga.lastCommand.payload == ["why": "d-1"])
        let last = saga.succeed(["id": "n-1"])
        #expect(saga.step("fraud-alert").status == .skipped)
        #expect(saga.status == .failed)
        #expect(last.effects.contains(.finished(.failed)))
        #expect(saga.saga.lastError == "fraud: card declined")
        #expect(!saga.sent.contains { $0.step.hasPrefix("notify-failure") && $0.direction == .compensation })
    }

    @Test("the fraud alert runs when fraud stopped the saga")
    func fraudAlert() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 100])
        saga.start()
        saga.succeed(["entry": "d-1"])
        saga.reply(.failed(code: "fraud_suspected", message: "score 91"))
        saga.succeed()
        saga.succeed()
        #expect(saga.lastCommand.step == "fraud-alert")
        saga.succeed()
        #expect(saga.status == .failed)
        #expect(saga.saga.steps.map(\.status) == [.compensated, .skipped, .failed, .pending, .pending, .succeeded, .succeeded])
    }

    @Test("a failure handler that fails, or spends its budget, is recorded and passed; it never suspends the saga")
    func failingHandler() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 100])
        saga.start()
        saga.succeed(["entry": "d-1"])
        saga.reply(.failed(code: "fraud_suspected", message: "score 91"))
        saga.succeed()
        // notify-failure: a business failure, at once.
        let failed = saga.reply(.failed(code: "bad_template", message: "no such template"))
        #expect(failed.history.map(\.kind).starts(with: [.stepFailed, .failureHandlerFailed]))
        #expect(saga.step("notify-failure").status == .failed)
        #expect(saga.lastCommand.step == "fraud-alert")
        // fraud-alert: two timeouts spend its budget of two.
        saga.fireLatest(.stepTimeout)
        saga.fireLatest(.retryBackoff)
        let spent = saga.fireLatest(.stepTimeout)
        #expect(spent.history.map(\.kind).contains(.failureHandlerFailed))
        #expect(saga.step("fraud-alert").status == .timedOut)
        #expect(saga.status == .failed)
        #expect(saga.saga.lastError == "fraud: score 91")
        #expect(!saga.sent.contains { $0.direction == .compensation && $0.step.contains("alert") })
    }

    @Test("a cancelled saga runs its failure handlers too and ends CANCELLED; a completed one never runs them")
    func cancelledAndCompleted() {
        var cancelled = SagaHarness(Self.transfer, input: ["amount": 100])
        cancelled.start()
        cancelled.succeed(["entry": "d-1"])
        cancelled.handle(.cancel(reason: "customer asked", requestedBy: "ops"))
        cancelled.succeed()  // fraud's interrupted attempt has no compensation; debit's compensation
        #expect(cancelled.lastCommand.step == "notify-failure")
        cancelled.succeed()
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.handle(.cancel(reason: "again")).outcome != .applied)

        var completed = SagaHarness(Self.transfer, input: ["amount": 100])
        completed.start()
        completed.succeed(["entry": "d-1"])
        completed.succeed()
        completed.succeed()
        completed.succeed()
        #expect(completed.status == .completed)
        #expect(!completed.sent.contains { $0.step == "notify-failure" })
        #expect(completed.saga.steps.suffix(2).allSatisfy { $0.status == .pending })
    }

    @Test("resolving a suspended compensation by hand still runs the failure handlers")
    func resolveRunsHandlers() {
        var saga = SagaHarness(Self.transfer, input: ["amount": 100])
        saga.start()
        saga.succeed(["entry": "d-1"])
        saga.reply(.failed(code: "declined", message: "no"))
        saga.reply(.failed(code: "ledger_down", message: "refund refused"))
        #expect(saga.status == .suspended)
        saga.handle(.operatorAction(.resolve(reason: "refunded by hand")))
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.step == "notify-failure")
        saga.succeed()
        #expect(saga.status == .failed)
    }
}

/// Signal steps: a step that waits for a named event from outside.
@Suite("Workflow language: signals")
struct SignalTests {
    /// reserve (compensated) → await-payment (signal) → capture (pivot) → await-shipping (signal).
    static let checkout = WorkflowDefinition(
        name: "checkout", version: 1,
        steps: [
            Workflows.step("reserve"),
            .waiting(for: "payment-result", name: "await-payment", timeout: .minutes(15)),
            Workflows.step("capture", pivot: true),
            .waiting(for: "shipped", name: "await-shipping", timeout: .minutes(60)),
        ])

    static func signal(
        _ name: String, key: String = "k-1", _ outcome: SagaSignal.Outcome = .succeeded(payload: ["ok": true])
    )
        -> SagaEvent
    {
        .signal(SagaSignal(name: name, key: key, outcome: outcome, sentBy: "payments", receivedAt: .distantPast))
    }

    @Test("a signal step waits without sending a command; the signal's payload becomes its output")
    func waitsAndConsumes() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        let waiting = saga.succeed(["entry": "r-1"])
        #expect(waiting.commands.isEmpty)
        #expect(waiting.history.map(\.kind).suffix(1) == [.signalAwaited])
        #expect(saga.step("await-payment").status == .running)
        #expect(saga.timers.last?.kind == .stepTimeout && saga.timers.last?.due == saga.now + 900)
        let delivered = saga.handle(Self.signal("payment-result", .succeeded(payload: ["payment_id": "p-1"])))
        #expect(delivered.outcome == .applied)
        #expect(delivered.history.map(\.kind) == [.signalReceived, .stepSucceeded, .commandSent])
        #expect(delivered.history.first?.detail == "signal 'payment-result' received")
        #expect(saga.step("await-payment").output == ["payment_id": "p-1"])
        #expect(saga.lastCommand.step == "capture")
        #expect(saga.saga.signals.map(\.consumedBy) == ["await-payment"])
        #expect(saga.saga.signals.first?.receivedAt == saga.now)
    }

    @Test("a signal that comes before its step waits is kept, and consumed once the step waits")
    func earlySignal() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        let early = saga.handle(Self.signal("payment-result", .succeeded(payload: ["payment_id": "p-2"])))
        #expect(early.outcome == .applied)
        #expect(early.history.map(\.detail) == ["signal 'payment-result' received; kept until step 'await-payment' waits for it"])
        #expect(saga.saga.signals.first?.consumedBy == nil)
        #expect(
            saga.handle(Self.signal("payment-result", key: "k-2")).outcome
                == .rejected("another signal 'payment-result' is already kept for step 'await-payment'"))
        let reached = saga.succeed(["entry": "r-1"])
        #expect(reached.history.map(\.kind) == [.stepSucceeded, .signalAwaited, .stepSucceeded, .commandSent])
        #expect(saga.step("await-payment").output == ["payment_id": "p-2"])
        #expect(saga.lastCommand.step == "capture")
    }

    @Test("the same signal again is a duplicate; another after the step is done is refused; unknown names are refused")
    func idempotentAndRefused() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        saga.succeed(["entry": "r-1"])
        saga.handle(Self.signal("payment-result"))
        let again = saga.handle(Self.signal("payment-result"))
        #expect(again.outcome.isIgnoredDuplicate)
        #expect(saga.saga.signals.count == 1)
        #expect(
            saga.handle(Self.signal("payment-result", key: "k-2")).outcome
                == .rejected("step 'await-payment' is SUCCEEDED and no longer waits for signal 'payment-result'"))
        #expect(saga.handle(Self.signal("refund")).outcome == .rejected("the workflow has no step that waits for a signal named 'refund'"))
        let refused = saga.handle(Self.signal("refund"))
        #expect(refused.history.map(\.kind) == [.signalRefused])
    }

    @Test("a failed signal before the pivot fails its step and compensates the steps before it")
    func failedSignal() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        saga.succeed(["entry": "r-1"])
        saga.handle(Self.signal("payment-result", .failed(code: "card_declined", message: "declined by the issuer")))
        #expect(saga.step("await-payment").status == .failed)
        #expect(saga.step("await-payment").error?.code == "card_declined")
        #expect(saga.status == .compensating)
        #expect(saga.lastCommand.step == "reserve" && saga.lastCommand.direction == .compensation)
        #expect(
            saga.handle(Self.signal("payment-result", key: "k-2")).outcome
                == .rejected("the saga is COMPENSATING: step 'await-payment' will not wait for signal 'payment-result'"))
    }

    @Test("no signal in time fails the step (its outcome is known: nothing happened); after the pivot it suspends, and retry waits again")
    func timeouts() {
        var before = SagaHarness(Self.checkout)
        before.start()
        before.succeed(["entry": "r-1"])
        before.fireLatest(.stepTimeout)
        #expect(before.step("await-payment").status == .failed)
        #expect(!before.step("await-payment").outcomeUnknown)
        #expect(before.step("await-payment").error?.message == "no signal 'payment-result' within 15m")
        #expect(before.lastCommand.step == "reserve" && before.lastCommand.direction == .compensation)

        var after = SagaHarness(Self.checkout)
        after.start()
        after.succeed(["entry": "r-1"])
        after.handle(Self.signal("payment-result"))
        after.succeed()
        after.fireLatest(.stepTimeout)
        #expect(after.status == .suspended)
        #expect(after.handle(Self.signal("shipped", key: "s-1")).outcome == .applied)
        #expect(after.saga.signals.last?.consumedBy == nil)
        after.handle(.operatorAction(.retry(reason: "the carrier is late")))
        #expect(after.status == .completed)
        #expect(after.step("await-shipping").attempt == 2)
        #expect(after.saga.signals.map(\.consumedBy) == ["await-payment", "await-shipping"])
    }

    @Test("a failed signal after the pivot suspends; retry waits again for a new signal, never the consumed one")
    func failedSignalAfterPivot() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        saga.succeed(["entry": "r-1"])
        saga.handle(Self.signal("payment-result"))
        saga.succeed()
        saga.handle(Self.signal("shipped", key: "s-1", .failed(code: "lost", message: "the parcel was lost")))
        #expect(saga.status == .suspended)
        let retried = saga.handle(.operatorAction(.retry(reason: "the carrier found it")))
        #expect(retried.history.map(\.kind) == [.operatorAction, .signalAwaited])
        #expect(saga.status == .processing)
        #expect(saga.step("await-shipping").status == .running)
        #expect(saga.handle(Self.signal("shipped", key: "s-2", .succeeded(payload: ["tracking": "T-9"]))).outcome == .applied)
        #expect(saga.status == .completed)
        #expect(saga.step("await-shipping").output == ["tracking": "T-9"])
        #expect(saga.saga.signals.map(\.consumedBy) == ["await-payment", "await-shipping", "await-shipping"])
    }

    @Test("cancel while waiting for a signal: the wait had no effect, so the step is FAILED, not TIMED_OUT")
    func cancelWhileWaiting() {
        var saga = SagaHarness(Self.checkout)
        saga.start()
        saga.succeed(["entry": "r-1"])
        saga.handle(.cancel(reason: "customer left"))
        #expect(saga.step("await-payment").status == .failed)
        #expect(saga.lastCommand.step == "reserve" && saga.lastCommand.direction == .compensation)
        saga.succeed()
        #expect(saga.status == .cancelled)
        #expect(saga.handle(Self.signal("payment-result")).outcome == .rejected("the saga is already CANCELLED"))
    }

    @Test("signal steps are written with signal: and checked")
    func parsing() throws {
        let definition = try WorkflowDefinition.parse(
            """
            name: pay
            version: 1
            steps:
              - { name: reserve, participant: stock, action: reserve }
              - { name: await-payment, signal: payment-result, timeout: 15m }
            """, format: .yaml)
        #expect(definition.steps[1].signal == "payment-result")
        #expect(definition.steps[1].timeout == .minutes(15))
        #expect(definition.steps[1].retry == .once)
        #expect(definition.participants == ["stock"])
        #expect(definition.stepIndex(waitingFor: "payment-result") == 1)
        var issues: [String] = []
        do {
            _ = try WorkflowDefinition.parse(
                """
                name: pay
                version: 1
                steps:
                  - { name: a, signal: go, participant: stock, retry: { max_attempts: 2 } }
                  - { name: b, signal: go }
                on_failure:
                  - { name: c, signal: later }
                """, format: .yaml)
        } catch {
            issues = error.issues.map { "\($0.step ?? "-") \($0.field): \($0.message)" }
        }
        #expect(
            Set(issues) == [
                "a participant: a signal step waits for its signal and sends no command; leave participant out",
                "a retry: a signal step waits for its signal and sends no command; leave retry out",
                "b signal: step 'a' already waits for signal 'go'",
                "c signal: a failure handler runs after the saga has failed; it cannot wait for a signal",
            ])
    }
}

extension SagaTransition.Outcome {
    var isIgnoredDuplicate: Bool { if case .ignored(.duplicate, _) = self { true } else { false } }
}
