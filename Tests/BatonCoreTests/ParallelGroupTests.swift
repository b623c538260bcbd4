import BatonCore
import Foundation
import Testing

@Suite("Workflow language: parallel groups")
struct ParallelGroupTests {
    /// reserve → checks (identity | sanctions: screen, review | large: report, when the amount is
    /// large) → open (the pivot) → welcome.
    static let text = """
        name: onboarding
        version: 1
        input:
          properties:
            amount: { type: integer }
        steps:
          - name: reserve
            participant: users
            action: reserve
            compensate: { action: release }
          - name: checks
            parallel:
              - name: identity
                participant: kyc
                action: verify
                compensate: { action: forget, payload: { id: "{{steps.identity.output.id}}" } }
              - name: sanctions
                steps:
                  - name: screen
                    participant: kyc
                    action: screen
                    payload: { user: "{{steps.reserve.output.user}}" }
                    compensate: { action: unscreen }
                  - name: review
                    participant: kyc
                    action: review
                    payload: { hits: "{{steps.screen.output.hits}}" }
                    compensate: { action: unreview }
              - name: large
                when: input.amount >= 1000
                steps:
                  - { name: report, participant: compliance, action: report, compensate: { action: withdraw } }
          - name: open
            participant: ledger
            action: open
            pivot: true
            payload:
              identity: "{{steps.identity.output.id}}"
              hits: "{{steps.review.output.hits}}"
          - { name: welcome, participant: notifications, action: send }
        """

    static let definition = try! WorkflowDefinition.parse(text, format: .yaml)

    // MARK: - Reading and checking

    @Test("a group is read into its steps, each placed in its group and branch; a one-step branch is named after its step")
    func reading() throws {
        let definition = Self.definition
        #expect(definition.steps.map(\.name) == ["reserve", "identity", "screen", "review", "report", "open", "welcome"])
        #expect(definition.steps.map { $0.branch?.name } == [nil, "identity", "sanctions", "sanctions", "large", nil, nil])
        #expect(Set(definition.steps.compactMap { $0.branch?.group }) == ["checks"])
        #expect(definition.steps[4].branch?.when?.description == "input.amount >= 1000")
        let group = try #require(definition.parallelGroup(containing: 3))
        #expect(group.name == "checks" && group.range == 1..<5 && group.branches == [1..<2, 2..<4, 4..<5])
        #expect(definition.parallelGroup(containing: 0) == nil && definition.parallelGroup(containing: 5) == nil)
        #expect(definition.parallelGroups == [group])
        let decoded = try JSONDecoder().decode(WorkflowDefinition.self, from: definition.canonicalJSON)
        #expect(decoded == definition)
        let plain = try WorkflowDefinition.parse(
            "name: a\nversion: 1\nsteps:\n  - { name: debit, participant: ledger, action: debit }\n", format: .yaml)
        #expect(!String(decoding: plain.canonicalJSON, as: UTF8.self).contains("branch"))
    }

    @Test("every rule about groups is checked, naming the step or group and the field")
    func validation() {
        let head = "name: a\nversion: 1\nsteps:\n"
        let debit = "  - { name: debit, participant: ledger, action: debit, compensate: { action: undo } }\n"
        func group(_ branches: String, name: String = "checks") -> String { "  - name: \(name)\n    parallel:\n\(branches)" }
        let twoBranches = "      - { name: a, participant: s, action: a }\n      - { name: b, participant: s, action: b }\n"

        #expect(
            definitionIssues(head + debit + group("      - { name: a, participant: s, action: a }\n"))
                == ["checks parallel: a parallel group needs at least two branches (a single branch is a plain step or steps)"])
        #expect(
            definitionIssues(
                head
                    + group("      - { name: a, participant: s, action: a, pivot: true }\n      - { name: b, participant: s, action: b }\n")
            )
                == [
                    "a pivot: the pivot cannot be in parallel group 'checks': when another branch fails, the pivot's effect could no longer be undone; put the pivot after the group"
                ])
        #expect(
            definitionIssues(head + "  - { name: pay, participant: p, action: pay, pivot: true }\n" + group(twoBranches)).first?
                .hasPrefix("checks parallel: a parallel group cannot follow the pivot 'pay'") == true)
        #expect(
            definitionIssues(
                head + debit
                    + group(
                        "      - { name: a, participant: s, action: a }\n      - { name: b, participant: s, action: b, payload: { x: '{{steps.a.output.x}}' } }\n"
                    ))
                == [
                    "b payload.x: {{steps.a.output.x}}: step 'a' runs in parallel with this one (another branch of group 'checks'), so its output may not exist yet; read it after the group"
                ])
        #expect(
            definitionIssues(
                head + group(twoBranches) + "  - { name: b2, participant: s, action: b, when: \"steps.a.status == 'SUCCEEDED'\" }\n"
            )
            .isEmpty)
        #expect(
            definitionIssues(
                head
                    + group(
                        "      - { name: a, participant: s, action: a }\n      - { name: b, participant: s, action: b, when: \"steps.a.status == 'SUCCEEDED'\" }\n"
                    )
            ).first?
            .hasPrefix("b when: steps.a.status: step 'a' runs in parallel") == true)
        #expect(
            definitionIssues(
                head
                    + group(
                        "      - { name: a, participant: s, action: a }\n      - { name: x, when: \"steps.a.status == 'FAILED'\", steps: [{ name: b, participant: s, action: b }] }\n"
                    ))
                == ["checks branch 'x'.when: steps.a.status: step 'a' runs later, so its output does not exist yet"])
        #expect(
            definitionIssues(head + group("      - { name: a, participant: s, action: a }\n      - { name: x, steps: [] }\n"))
                == ["checks parallel[1].steps: a branch needs at least one step"])
        #expect(
            definitionIssues(
                head
                    + group(
                        "      - { name: a, participant: s, action: a }\n      - { name: a, steps: [{ name: b, participant: s, action: b }] }\n"
                    ))
                == ["checks parallel[1]: another branch of group 'checks' is already named 'a'"])
        #expect(
            definitionIssues(head + group("      - { name: a, participant: s, action: a }\n      - { name: inner, parallel: [] }\n"))
                == [
                    "inner parallel: parallel groups do not nest: a branch holds steps; make the inner group's branches branches of this group"
                ])
        #expect(definitionIssues(head + group(twoBranches, name: "a")) == ["a name: another step or parallel group is already named 'a'"])
        #expect(
            definitionIssues(head + debit + "on_failure:\n" + group(twoBranches))
                == ["checks parallel: failure handlers run one after another; a parallel group belongs in steps"])
        #expect(
            definitionIssues(
                head
                    + group("      - { name: a, participant: s, action: a, colour: red }\n      - { name: b, participant: s, action: b }\n")
            )
            .first?.hasPrefix("a colour: unknown key") == true)
    }

    @Test("the steps of all branches count toward the step limit")
    func stepLimit() {
        let branches = (0..<60).map { "      - { name: s\($0), participant: s, action: a }\n" }.joined()
        let more = (0..<50).map { "  - { name: t\($0), participant: s, action: a }\n" }.joined()
        let found = definitionIssues("name: a\nversion: 1\nsteps:\n  - name: g\n    parallel:\n" + branches + more)
        #expect(found == ["- steps: has 110 steps counting those of its parallel branches; a workflow may have at most 100"])
    }

    // MARK: - Running

    @Test(
        "a group starts every branch at once, runs each branch in order, and joins when all are done; later steps read each branch's output"
    )
    func runsAndJoins() {
        var saga = SagaHarness(Self.definition, input: ["amount": 5000])
        saga.start()
        let started = saga.succeed("reserve", ["user": "u-1"])
        #expect(started.commands.map(\.step) == ["identity", "screen", "report"])
        #expect(started.history.map(\.kind).contains(.parallelStarted))
        #expect(saga.lastCommand.step == "report")
        #expect(saga.sent.first { $0.step == "screen" }?.payload == ["user": "u-1"])

        let screened = saga.succeed("screen", ["hits": 0])
        #expect(screened.commands.map(\.step) == ["review"])
        #expect(saga.sent.last?.payload == ["hits": 0])
        saga.succeed("report")
        saga.succeed("review", ["hits": 0])
        #expect(saga.step("open").status == .pending)
        let joined = saga.succeed("identity", ["id": "id-7"])
        #expect(joined.history.map(\.kind) == [.stepSucceeded, .parallelJoined, .commandSent])
        #expect(saga.lastCommand.step == "open")
        #expect(saga.lastCommand.payload == ["identity": "id-7", "hits": 0])
        saga.succeed("open")
        saga.succeed("welcome")
        #expect(saga.status == .completed)
        #expect(saga.saga.steps.map(\.completionOrder) == [nil, 4, 1, 3, 2, nil, nil])
    }

    @Test("a branch whose condition does not hold is SKIPPED whole, with the condition in the history")
    func skippedBranch() {
        var saga = SagaHarness(Self.definition, input: ["amount": 10])
        saga.start()
        let started = saga.succeed("reserve", ["user": "u-1"])
        #expect(started.commands.map(\.step) == ["identity", "screen"])
        #expect(saga.step("report").status == .skipped)
        #expect(
            started.history.first { $0.kind == .stepSkipped }?.detail
                == "skipped: the condition of branch 'large' does not hold (when: input.amount >= 1000)")
        saga.succeed("identity", ["id": "id-7"])
        saga.succeed("screen", ["hits": 0])
        saga.succeed("review", ["hits": 0])
        #expect(saga.lastCommand.step == "open")
    }

    @Test(
        "when a branch fails, no other step starts, the steps under way stop, and every step that may have taken effect is compensated once, in reverse order of completion"
    )
    func failureCompensatesInReverseOrderOfCompletion() {
        var saga = SagaHarness(Self.definition, input: ["amount": 5000])
        saga.start()
        saga.succeed("reserve", ["user": "u-1"])
        saga.succeed("report")
        saga.succeed("identity", ["id": "id-7"])
        // screen is still in flight when identity's compensation is decided; review never starts.
        let failed = saga.reply(to: "report", .failed(code: "x", message: "late"))
        #expect(failed.outcome != .applied)
        let timeout = saga.timers.last { $0.step == "screen" && $0.kind == .stepTimeout }!
        saga.now = timeout.due
        let timedOut = saga.handle(.timerFired(timeout))
        // screen timed out once and is retried; then it fails for good.
        #expect(timedOut.history.map(\.kind) == [.stepTimedOut, .retryScheduled])
        let backoff = saga.timers.last { $0.step == "screen" && $0.kind == .retryBackoff }!
        saga.now = backoff.due
        saga.handle(.timerFired(backoff))
        let stop = saga.reply(to: "screen", .failed(code: "sanctioned", message: "listed"))
        #expect(saga.status == .compensating)
        #expect(saga.step("review").status == .pending)
        #expect(saga.step("screen").status == .failed)
        #expect(stop.commands.map(\.direction) == [.compensation])
        // identity completed after report, so it is undone first; screen failed for certain.
        #expect(saga.lastCommand.step == "identity" && saga.lastCommand.payload == ["id": "id-7"])
        saga.succeed("identity")
        #expect(saga.lastCommand.step == "report" && saga.lastCommand.direction == .compensation)
        saga.succeed("report")
        #expect(saga.lastCommand.step == "reserve" && saga.lastCommand.direction == .compensation)
        saga.succeed("reserve")
        #expect(saga.status == .failed)
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["identity", "report", "reserve"])
    }

    @Test(
        "a step under way in another branch when one fails is stopped: its outcome is unknown, so it is compensated first, and its late reply is ignored"
    )
    func inFlightBranchIsStopped() {
        var saga = SagaHarness(Self.definition, input: ["amount": 5000])
        saga.start()
        saga.succeed("reserve", ["user": "u-1"])
        saga.succeed("screen", ["hits": 0])
        let stop = saga.reply(to: "identity", .failed(code: "no_match", message: "documents do not match"))
        #expect(stop.history.filter { $0.kind == .stepInterrupted }.map(\.step) == ["review", "report"])
        #expect(stop.effects.contains(.cancelTimer(SagaTimer.Key(kind: .stepTimeout, step: "review", direction: .action))))
        #expect(saga.step("review").status == .timedOut && saga.step("report").status == .compensating)
        #expect(saga.step("review").error?.code == "interrupted" && saga.step("report").error?.code == "interrupted")
        // review and report were stopped in step order, after screen had succeeded: report first.
        #expect(saga.lastCommand.step == "report" && saga.lastCommand.direction == .compensation)
        let late = saga.reply(to: "review", .succeeded(output: ["hits": 0]))
        #expect(late.outcome != .applied)
        saga.succeed("report")
        saga.succeed("review")
        saga.succeed("screen")
        saga.succeed("reserve")
        #expect(saga.status == .failed)
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["report", "review", "screen", "reserve"])
        #expect(saga.step("identity").status == .failed)
    }

    @Test("cancel while a group runs stops every branch's step under way and compensates")
    func cancelDuringGroup() {
        var saga = SagaHarness(Self.definition, input: ["amount": 10])
        saga.start()
        saga.succeed("reserve", ["user": "u-1"])
        saga.succeed("identity", ["id": "id-7"])
        let cancel = saga.handle(.cancel(reason: "customer asked", requestedBy: "ops"))
        #expect(cancel.outcome == .applied)
        #expect(cancel.history.filter { $0.kind == .stepInterrupted }.map(\.step) == ["screen"])
        #expect(saga.sent.filter { $0.direction == .compensation }.map(\.step) == ["screen"])
        saga.succeed("screen")
        saga.succeed("identity")
        saga.succeed("reserve")
        #expect(saga.status == .cancelled)
    }

    @Test("each branch retries on its own while the others go on")
    func independentRetries() {
        var saga = SagaHarness(Self.definition, input: ["amount": 10])
        saga.start()
        saga.succeed("reserve", ["user": "u-1"])
        saga.reply(to: "screen", .retry(after: .seconds(2), message: "busy"))
        #expect(saga.step("screen").retryAt != nil)
        saga.succeed("identity", ["id": "id-7"])
        let backoff = saga.timers.last { $0.step == "screen" && $0.kind == .retryBackoff }!
        saga.now = backoff.due
        let retried = saga.handle(.timerFired(backoff))
        #expect(retried.commands.map { "\($0.step)#\($0.attempt)" } == ["screen#2"])
        // An old attempt's reply changes nothing.
        let stale = saga.handle(.reply(StepReply(step: "screen", direction: .action, attempt: 1, status: .succeeded(output: [:]))))
        #expect(stale.outcome != .applied)
        saga.succeed("screen", ["hits": 0])
        saga.succeed("review", ["hits": 0])
        #expect(saga.lastCommand.step == "open")
    }

    @Test("a branch may wait for a signal while the others run")
    func signalInBranch() throws {
        let definition = try WorkflowDefinition.parse(
            """
            name: a
            version: 1
            steps:
              - name: checks
                parallel:
                  - { name: approval, signal: approved, timeout: 1h }
                  - { name: score, participant: fraud, action: score, compensate: { action: forget } }
              - { name: pay, participant: payments, action: pay, pivot: true }
            """, format: .yaml)
        var saga = SagaHarness(definition)
        let started = saga.start()
        #expect(started.commands.map(\.step) == ["score"])
        #expect(saga.step("approval").status == .running)
        saga.succeed("score")
        let signal = SagaSignal(
            name: "approved", key: "k1", outcome: .succeeded(payload: ["by": "ann"]), sentBy: "ops", receivedAt: saga.now)
        saga.handle(.signal(signal))
        #expect(saga.step("approval").output == ["by": "ann"])
        #expect(saga.lastCommand.step == "pay")
    }
}
