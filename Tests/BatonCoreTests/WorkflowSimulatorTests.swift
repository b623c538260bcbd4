import Foundation
import Testing

@_spi(Mutations) @testable import BatonCore

/// `baton workflows simulate`'s engine: the shipped workflows pass it, a broken state machine
/// fails it, the same seed replays the same runs, and each finding shows on a definition made to
/// have it and not on one without.
@Suite("Workflow simulator")
struct WorkflowSimulatorTests {
    static let workflowsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("workflows")

    static func shipped() throws -> [WorkflowDefinition] {
        let files = try FileManager.default.contentsOfDirectory(atPath: workflowsDirectory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        return try files.map { file in
            let text = try String(contentsOf: workflowsDirectory.appendingPathComponent(file), encoding: .utf8)
            return try WorkflowDefinition.parse(text, format: .yaml, source: file)
        }
    }

    static func simulate(
        _ definition: WorkflowDefinition, runs: Int = 400, seed: UInt64 = 1, faults: [String] = [],
        mutations: Set<SagaStateMachine.Mutation> = []
    ) throws -> SimulationReport {
        var options = WorkflowSimulator.Options(runs: runs, seed: seed, faults: try SimulationFaults.parse(faults))
        options.mutations = mutations
        return WorkflowSimulator(definition: definition).simulate(options)
    }

    static func parse(_ yaml: String) throws -> WorkflowDefinition {
        try WorkflowDefinition.parse(yaml, format: .yaml, source: "test.yaml")
    }

    @Test("the shipped workflows break no invariant, over several seeds, and have no finding left open")
    func shippedWorkflowsPass() throws {
        let definitions = try Self.shipped()
        #expect(definitions.count >= 5)
        for definition in definitions {
            for seed: UInt64 in [1, 2, 3] {
                var report = try Self.simulate(definition, runs: 500, seed: seed)
                #expect(report.passed, "\(definition.name) seed \(seed): \(report.violations.map { "\($0.invariant): \($0.message)" })")
                report.accept([try .init(parsing: "suspended-path:first-deposit")])
                #expect(report.openFindings.isEmpty, "\(definition.name): \(report.openFindings.map(\.message))")
            }
        }
    }

    @Test("funds-transfer reaches COMPLETED, FAILED and CANCELLED, each with a story that starts at the start")
    func endStatesAndStories() throws {
        let transfer = try #require(try Self.shipped().first { $0.name == "funds-transfer" })
        let report = try Self.simulate(transfer, runs: 1000)
        let statuses = Set(report.endStates.map(\.status))
        #expect(statuses.isSuperset(of: [.completed, .failed, .cancelled]), "\(statuses)")
        #expect(report.endStates.reduce(0) { $0 + $1.runs } == 1000)
        for state in report.endStates {
            #expect(state.schedule.first?.contains("start →") == true, "\(state.schedule)")
            #expect(
                state.schedule.last?.contains(state.status.rawValue) == true
                    || state.schedule.contains { $0.contains(state.status.rawValue) })
        }
        // The shortest story of a plain completion is one line per step and the start.
        let completed = try #require(report.endStates.first { $0.description == "COMPLETED" })
        #expect(completed.schedule.count == 7, "\(completed.schedule)")
    }

    @Test("the same seed replays the same runs; another seed makes others")
    func replay() throws {
        let transfer = try #require(try Self.shipped().first { $0.name == "funds-transfer" })
        let first = try Self.simulate(transfer, runs: 300, seed: 42)
        let again = try Self.simulate(transfer, runs: 300, seed: 42)
        let other = try Self.simulate(transfer, runs: 300, seed: 43)
        #expect(first.json == again.json)
        #expect(first.json != other.json)
        // A run alone is the same run as in the report.
        let state = try #require(first.endStates.first)
        let options = WorkflowSimulator.Options(runs: 300, seed: 42)
        #expect(WorkflowSimulator(definition: transfer).run(state.run, options).schedule == state.schedule)
    }

    @Test(
        "a state machine that compensates past the pivot fails on every shipped workflow with a step after its pivot",
        arguments: ["funds-transfer", "wallet-withdrawal", "wallet-topup", "onboarding"])
    func compensatingPastThePivotIsCaught(workflow: String) throws {
        let definition = try #require(try Self.shipped().first { $0.name == workflow })
        let clean = try Self.simulate(definition, runs: 1000)
        #expect(clean.passed)
        let mutated = try Self.simulate(definition, runs: 1000, mutations: [.compensatePastPivot])
        #expect(!mutated.passed)
        #expect(mutated.violations.contains { $0.invariant == .neverPastPivot }, "\(mutated.violations.map(\.invariant))")
    }

    @Test(
        "a state machine that leaves timed-out steps uncompensated fails on every shipped workflow",
        arguments: ["funds-transfer", "wallet-withdrawal", "wallet-topup", "onboarding", "checkout"])
    func forgettingTimedOutStepsIsCaught(workflow: String) throws {
        let definition = try #require(try Self.shipped().first { $0.name == workflow })
        let mutated = try Self.simulate(definition, runs: 1000, mutations: [.forgetTimedOutSteps])
        #expect(mutated.violations.contains { $0.invariant == .compensatedExactlyOnce }, "\(mutated.violations.map(\.invariant))")
        let violation = try #require(mutated.violations.first)
        // The step's outcome became unknown: an attempt timed out, or a cancel or the deadline
        // stopped it in flight.
        #expect(
            violation.schedule.contains { $0.contains("times out") || $0.contains("cancel") || $0.contains("deadline") },
            "\(violation.schedule)")
    }

    // MARK: - Findings, each on a definition made to have it and on one without

    static func workflow(
        retry: String = "{ max_attempts: 3, backoff: exponential, initial: 2s, max_delay: 10s }",
        refund: String = "account: \"{{input.account}}\"", deadline: String = "10m", afterPivotAttempts: Int = 5
    ) throws -> WorkflowDefinition {
        try parse(
            """
            name: pay
            version: 1
            deadline: \(deadline)
            input:
              required: [account]
              properties: { account: { type: string } }
            steps:
              - name: debit
                participant: ledger
                action: debit
                timeout: 5s
                retry: \(retry)
                compensate:
                  action: refund
                  payload: { \(refund) }
              - name: credit
                participant: ledger
                action: credit
                pivot: true
                timeout: 5s
                retry: { max_attempts: 5, backoff: exponential, initial: 2s, max_delay: 10s }
              - name: notify
                participant: notifications
                action: send
                timeout: 5s
                retry: { max_attempts: \(afterPivotAttempts), backoff: exponential, initial: 2s, max_delay: 10s }
            """)
    }

    @Test("the clean workflow has no finding")
    func cleanWorkflow() throws {
        let report = try Self.simulate(Self.workflow(), runs: 1000)
        #expect(report.passed)
        #expect(report.findings.isEmpty, "\(report.findings.map(\.message))")
    }

    @Test("a retry budget spent within less than one timeout is a finding")
    func retryBudget() throws {
        let report = try Self.simulate(Self.workflow(retry: "{ max_attempts: 4, backoff: fixed, initial: 500ms, max_delay: 500ms }"))
        let finding = try #require(report.findings.first { $0.kind == .retryBudgetShorterThanTimeout })
        #expect(finding.step == "debit")
        #expect(finding.message.contains("4 attempts within 1s500ms"), "\(finding.message)")
        #expect(
            WorkflowReview.retryWindow(RetryPolicy(maxAttempts: 4, backoff: .exponential, initial: .seconds(1), maxDelay: .seconds(3)))
                == .seconds(6))
    }

    @Test("a compensation that reads its timed-out action's output is a finding, with the story that leads there")
    func nullInCompensation() throws {
        let report = try Self.simulate(
            Self.workflow(refund: "entry: \"{{steps.debit.output.entry_id}}\", account: \"{{input.account}}\""),
            faults: ["ledger:timeout=0.3"])
        let finding = try #require(report.findings.first { $0.kind == .nullInCompensation })
        #expect(finding.step == "debit")
        #expect(finding.message.contains("{{steps.debit.output.entry_id}}"))
        let schedule = try #require(finding.schedule)
        #expect(
            schedule.contains { $0.contains("debit action #1 times out") || $0.contains("cancel") || $0.contains("deadline") },
            "\(schedule)")
        #expect(schedule.contains { $0.contains("sends debit compensation") })
        #expect((finding.runs ?? 0) > 0)
    }

    @Test("a step after the pivot with too few attempts is a finding, and its runs end SUSPENDED")
    func fewAttemptsAfterPivot() throws {
        let report = try Self.simulate(Self.workflow(afterPivotAttempts: 1), runs: 1000, faults: ["notifications:fail=0.5"])
        let few = try #require(report.findings.first { $0.kind == .fewAttemptsAfterPivot })
        #expect(few.step == "notify")
        let suspended = try #require(report.findings.first { $0.kind == .suspendedPath })
        #expect(suspended.step == "notify")
        #expect(suspended.message.contains("after the pivot"))
        let states = report.endStates.filter { $0.status == .suspended }
        #expect(states.reduce(0) { $0 + $1.runs } == suspended.runs)
        for state in states { #expect(state.schedule.last?.contains("SUSPENDED") == true, "\(state.schedule)") }
    }

    @Test("a deadline shorter than the timeouts up to the pivot is a finding")
    func deadlineShorterThanPath() throws {
        let report = try Self.simulate(Self.workflow(deadline: "8s"), runs: 100)
        let finding = try #require(report.findings.first { $0.kind == .deadlineShorterThanPath })
        #expect(finding.message.contains("10s"), "\(finding.message)")
        #expect(try Self.simulate(Self.workflow(deadline: "10s"), runs: 100).findings.isEmpty)
    }

    @Test("an accepted finding is still reported, and no longer open")
    func acceptance() throws {
        var report = try Self.simulate(Self.workflow(afterPivotAttempts: 1), runs: 300, faults: ["notifications:fail=0.5"])
        report.accept([try .init(parsing: "few-attempts-after-pivot:notify"), try .init(parsing: "suspended-path")])
        #expect(report.findings.count == 2)
        #expect(report.openFindings.isEmpty)
        #expect(throws: SimulationFaults.ParseError.self) { try SimulationReport.Acceptance(parsing: "bad-kind") }
    }

    @Test("drawn input fits the workflow's input schema, and conditions on it go both ways")
    func drawnInput() throws {
        let transfer = try #require(try Self.shipped().first { $0.name == "funds-transfer" })
        let report = try Self.simulate(
            transfer, runs: 500, faults: ["fail=0,retry=0,retry-after=0,timeout=0,late=0", "cancel=0,deadline=0"])
        // report-large-transfer runs only for 1,000,000 and more.
        let descriptions = Set(report.endStates.map(\.description))
        #expect(descriptions == ["COMPLETED", "COMPLETED: report-large-transfer SKIPPED"], "\(descriptions)")
        var random = SeededRandomNumberGenerator(seed: 3)
        for _ in 0..<200 {
            let input = InputSampler.sample(transfer.input, using: &random)
            #expect(transfer.input?.violations(of: input) == [], "\(input)")
        }
    }

    // MARK: - The fault settings

    @Test("fault settings: per participant, for every participant, and for the saga; bad ones say what is wrong")
    func faultSettings() throws {
        let faults = try SimulationFaults.parse(["fail=0,retry=0.2", "ledger:timeout=0.5", "cancel=0.5"])
        #expect(faults.defaults.fail == 0 && faults.defaults.retry == 0.2)
        #expect(faults.rates(for: "ledger").timeout == 0.5 && faults.rates(for: "ledger").retry == 0.2)
        #expect(faults.rates(for: "audit").timeout == SimulationFaults.Rates().timeout)
        #expect(faults.cancel == 0.5)
        for bad in ["nope=0.1", "fail=2", "fail=x", "fail", "ledger:cancel=0.1", "fail=0.6,timeout=0.6", ":fail=0.1", "a b:fail=0.1"] {
            #expect(throws: SimulationFaults.ParseError.self, "\(bad)") { try SimulationFaults.parse([bad]) }
        }
        // A ledger that refuses everything: every run fails at the debit, and nothing is compensated.
        let report = try Self.simulate(Self.workflow(), runs: 200, faults: ["cancel=0,deadline=0", "ledger:fail=1"])
        #expect(report.endStates.map(\.description) == ["FAILED: debit FAILED"])
    }
}
