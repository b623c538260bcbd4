import BatonCore
import Foundation
import Testing

/// `baton workflows simulate`, run as the built executable: the table, the JSON, the exit status.
@Suite("baton workflows simulate")
struct WorkflowsSimulateCommandTests {
    let command = WorkflowsValidateCommandTests()

    /// A step after the pivot with one attempt: a finding, and runs that end SUSPENDED.
    static let fragile = """
        name: fragile
        version: 1
        steps:
          - name: charge
            participant: payments
            action: charge
            pivot: true
            retry: { max_attempts: 5, backoff: exponential, initial: 10s, max_delay: 30s }
          - name: receipt
            participant: notifications
            action: send
            retry: { max_attempts: 1 }
        """

    @Test("the shipped workflows pass under --strict, with the finding onboarding accepts by design")
    func shippedWorkflows() throws {
        let run = try command.baton(
            "workflows", "simulate", "--runs", "300", "--seed", "5", "--strict", "--accept", "suspended-path:first-deposit")
        #expect(run.status == 0, "\(run.output)")
        for name in ["checkout v3", "funds-transfer v3", "onboarding v3", "wallet-topup v2", "wallet-withdrawal v2"] {
            #expect(run.output.contains(name), "\(name)")
        }
        #expect(run.output.contains("END STATES"))
        #expect(run.output.contains("ok             compensated-exactly-once"))
        #expect(run.output.contains("seed 5: replay with --seed 5 --runs 300"))
    }

    @Test("a finding fails only under --strict; the JSON report names it, with its story, and replays with the seed")
    func findingsAndJSON() throws {
        let directory = try command.temporaryDirectory(["fragile.yaml": Self.fragile])
        let file = directory.appendingPathComponent("fragile.yaml").path
        let lenient = try command.baton("workflows", "simulate", file, "--runs", "200", "--seed", "9")
        #expect(lenient.status == 0, "\(lenient.output)")
        #expect(lenient.output.contains("few-attempts-after-pivot [receipt]"))
        let strict = try command.baton("workflows", "simulate", file, "--runs", "200", "--seed", "9", "--strict")
        #expect(strict.status == 1)
        #expect(strict.output.contains("FAIL  \(file)"))

        let json = try command.baton(
            "workflows", "simulate", file, "--runs", "200", "--seed", "9", "--json", "--faults", "notifications:fail=0.5")
        #expect(json.status == 0, "\(json.output)")
        let parsed = try JSONParser.parse(json.output.trimmingCharacters(in: .whitespacesAndNewlines))
        let report = try #require(parsed.value(at: ["reports"])?.arrayValue?.first)
        #expect(report.value(at: ["workflow"]) == "fragile" && report.value(at: ["runs"]) == .integer(200))
        #expect(report.value(at: ["passed"]) == .bool(true))
        let kinds = (report.value(at: ["findings"])?.arrayValue ?? []).compactMap { $0.value(at: ["kind"])?.stringValue }
        #expect(Set(kinds) == ["few-attempts-after-pivot", "suspended-path"], "\(kinds)")
        let suspended = try #require(report.value(at: ["findings"])?.arrayValue?.first { $0.value(at: ["kind"]) == "suspended-path" })
        #expect((suspended.value(at: ["schedule"])?.arrayValue?.count ?? 0) >= 3)
        #expect(report.value(at: ["invariants"])?.arrayValue?.count == SagaInvariants.Invariant.allCases.count)

        let again = try command.baton(
            "workflows", "simulate", file, "--runs", "200", "--seed", "9", "--json", "--faults", "notifications:fail=0.5")
        #expect(again.output == json.output)

        // The run a finding names, replayed alone with the same seed and faults, tells the same story.
        let run = try #require(suspended.value(at: ["shortest_run"]))
        let replayed = try command.baton(
            "workflows", "simulate", file, "--seed", "9", "--json", "--faults", "notifications:fail=0.5", "--replay", "\(run.canonicalJSON)"
        )
        #expect(replayed.status == 0, "\(replayed.output)")
        let story = try JSONParser.parse(replayed.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(story.value(at: ["runs", "0", "schedule"]) == suspended.value(at: ["schedule"]))
        #expect(story.value(at: ["runs", "0", "status"]) == "SUSPENDED")
        let text = try command.baton(
            "workflows", "simulate", file, "--seed", "9", "--faults", "notifications:fail=0.5", "--replay", "\(run.canonicalJSON)")
        #expect(text.output.contains("end state: SUSPENDED"), "\(text.output)")
        #expect(try command.baton("workflows", "simulate", file, "--replay", "3").status == 64)
    }

    @Test("bad settings are refused, saying what is wrong")
    func badSettings() throws {
        let faults = try command.baton("workflows", "simulate", "--faults", "ledger:explode=0.5")
        #expect(faults.status == 64)
        #expect(faults.output.contains("--faults: bad setting 'explode=0.5': the kinds are fail"), "\(faults.output)")
        let runs = try command.baton("workflows", "simulate", "--runs", "0")
        #expect(runs.status == 64 && runs.output.contains("--runs must be from 1 to 100000"))
        let input = try command.baton("workflows", "simulate", "--input", "{nope")
        #expect(input.status == 64 && input.output.contains("--input is not JSON"))
        let accept = try command.baton("workflows", "simulate", "--accept", "everything")
        #expect(accept.status == 64 && accept.output.contains("--accept: bad setting 'everything'"), "\(accept.output)")
    }
}
