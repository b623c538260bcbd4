import BatonCore
import Foundation
import PropertyBased
import Testing

/// Extreme values fed to the reader, the validator and the state machine: each is refused with a
/// message that names the field and the limit, or handled, and nothing traps (a trap would end the
/// test process, failing the whole run).
@Suite("Extreme input")
struct ExtremeInputTests {
    func issues(_ text: String, format: WorkflowFormat = .yaml, limits: DefinitionLimits = .default) -> [DefinitionIssue] {
        do {
            _ = try WorkflowDefinition.parse(text, format: format, source: "test", limits: limits)
            return []
        } catch {
            return error.issues
        }
    }

    func definition(step: String = "", workflow: String = "") -> String {
        """
        name: far
        version: 1
        \(workflow)
        steps:
          - name: debit
            participant: ledger
            action: debit
            timeout: 1s
        \(step)
        """
    }

    @Test("the durations that crashed the engine are refused, naming the field and the maximum")
    func farDurations() {
        let retry = issues(definition(step: "    retry: { initial: 50000000000d, max_delay: 50000000000d }"))
        #expect(retry.contains { $0.step == "debit" && $0.field == "retry.initial" && $0.message.contains("maximum of 365d") })
        #expect(retry.contains { $0.field == "retry.max_delay" && $0.message.contains("maximum of 365d") })
        let deadline = issues(definition(workflow: "deadline: 50000000000d"))
        #expect(deadline.contains { $0.step == nil && $0.field == "deadline" && $0.message.contains("maximum of 365d") })
        let timeout = issues(definition(step: "    compensate: { action: credit, timeout: 366d }"))
        #expect(timeout.contains { $0.field == "compensate.timeout" && $0.message.contains("365d") })
        #expect(issues(definition(workflow: "deadline: 365d")).isEmpty)
    }

    @Test(
        "a duration of any text parses to at most the maximum or is refused",
        arguments: [
            "1e400s", "99999999999999999999999d", "9223372036854775807ms", "0.0000001ms", "365d1ms", "1..5s", "١s", "nanms",
            String(repeating: "9", count: 80) + "s", String(repeating: "1s", count: 40),
        ])
    func durationText(_ text: String) {
        if let duration = SagaDuration(parsing: text) { #expect(duration <= .maximum) }
        #expect(SagaDuration(parsing: "365d1ms") == nil)
        #expect(SagaDuration(parsing: "365d") == .maximum)
    }

    @Test("random duration texts never trap and never exceed the maximum")
    func randomDurations() async {
        await propertyCheck(count: 500, input: Gen.int(in: 0...Int.max).array(of: 1...4), Gen.int(in: 0...4).array(of: 1...4)) {
            amounts, units in
            let text = zip(amounts, units).map { "\($0)\(["ms", "s", "m", "h", "d"][$1])" }.joined()
            if let duration = SagaDuration(parsing: text) { #expect(duration.milliseconds >= 0 && duration <= .maximum) }
        }
    }

    @Test("durations built in code saturate instead of overflowing")
    func saturatingDurations() {
        #expect(SagaDuration.seconds(.max) == .maximum)
        #expect(SagaDuration.minutes(.min) == .zero)
        #expect(SagaDuration(milliseconds: .max) == .maximum)
        #expect(Date.distantFuture + SagaDuration.maximum == Date.latestStorable)
        #expect(Date.distantPast - SagaDuration.maximum == Date.earliestStorable)
    }

    @Test("retry delays stay within max_delay for any attempt and policy")
    func retryDelays() async {
        await propertyCheck(
            count: 500, input: Gen.int(in: Int.min...Int.max), Gen.int(in: 0...Int(SagaDuration.maximum.milliseconds)),
            Gen.int(in: 0...Int(SagaDuration.maximum.milliseconds))
        ) { attempt, first, second in
            var random = BatonCore.SeededRandomNumberGenerator(seed: UInt64(truncatingIfNeeded: attempt))
            let policy = RetryPolicy(
                maxAttempts: 1000, backoff: attempt % 2 == 0 ? .fixed : .exponential,
                initial: SagaDuration(milliseconds: Int64(min(first, second))),
                maxDelay: SagaDuration(milliseconds: Int64(max(first, second))), jitter: 1)
            let delay = policy.delay(after: attempt, using: &random)
            #expect(delay <= policy.maxDelay)
        }
    }

    @Test("numbers out of range in a definition are refused, not trapped on")
    func numbersOutOfRange() {
        let huge = issues(
            definition(
                step: "    retry: { max_attempts: 9223372036854775807, jitter: 1.0e308 }",
                workflow: "description: x"
            ).replacingOccurrences(of: "version: 1", with: "version: 9223372036854775807"))
        #expect(huge.contains { $0.field == "version" && $0.message.contains("at most 2147483647") })
        #expect(huge.contains { $0.field == "retry.max_attempts" && $0.message.contains("at most 1000") })
        #expect(huge.contains { $0.field == "retry.jitter" })
        let json = #"{"name": "far", "version": 123456789012345678901234567890, "steps": []}"#
        let refused = issues(json, format: .json)
        #expect(refused.count == 1)
        #expect(refused.first?.message.contains("beyond the 64-bit range") == true)
    }

    @Test("limits on steps, names, descriptions and templates name the field and the limit")
    func definitionLimits() {
        let limits = DefinitionLimits(maximumBytes: 4096, maximumSteps: 2, maximumNameLength: 8, maximumTemplateBytes: 40)
        let steps = (0..<3).map { "  - { name: s\($0), participant: p, action: a }" }.joined(separator: "\n")
        #expect(
            issues("name: w\nversion: 1\nsteps:\n\(steps)", limits: limits).contains {
                $0.field == "steps" && $0.message.contains("at most 2")
            })
        let long = issues("name: averyveryverylongname\nversion: 1\nsteps:\n  - { name: s, participant: p, action: a }", limits: limits)
        #expect(long.contains { $0.field == "name" && $0.message.contains("at most 8") })
        let template = issues(
            "name: w\nversion: 1\nsteps:\n  - { name: s, participant: p, action: a, payload: { text: \"\(String(repeating: "x", count: 50))\" } }",
            limits: limits)
        #expect(template.contains { $0.step == "s" && $0.field == "payload" && $0.message.contains("at most 40") })
        let big = issues(String(repeating: "#", count: 5000), limits: limits)
        #expect(big.first?.message.contains("limited to 4096 bytes") == true)
    }

    @Test("YAML anchors and aliases are refused before anything is expanded")
    func aliasBomb() {
        var bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for (level, name) in ["b", "c", "d", "e", "f", "g", "h", "i", "j"].enumerated() {
            let previous = level == 0 ? "a" : ["b", "c", "d", "e", "f", "g", "h", "i", "j"][level - 1]
            bomb += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
        }
        let refused = issues(bomb)
        #expect(refused.count == 1)
        #expect(refused.first?.message.contains("anchors and aliases") == true)
        let merge = issues(
            definition(step: "    retry: &r { max_attempts: 2 }\n  - name: again\n    participant: p\n    action: a\n    retry: *r"))
        #expect(merge.contains { $0.message.contains("anchors and aliases") })
    }

    @Test("deep nesting is refused in JSON and YAML without exhausting the stack")
    func deepNesting() {
        let depth = 100_000
        let json = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(issues(json, format: .json).first?.message.contains("nested deeper than 64") == true)
        #expect(issues(json).first?.message.contains("nested too deeply") == true)
        let compact = String(repeating: "- ", count: depth) + "x"
        #expect(issues(compact).first?.message.contains("nested too deeply") == true)
        let flowInBlock = "steps: " + String(repeating: "{a: ", count: 100) + "1" + String(repeating: "}", count: 100)
        #expect(issues(flowInBlock).first?.message.contains("nested deeper than 64") == true)
    }

    @Test("a state machine over a definition at every limit never traps and keeps every date storable")
    func stateMachineAtTheLimits() async {
        let retry = RetryPolicy(maxAttempts: 1000, backoff: .exponential, initial: .maximum, maxDelay: .maximum, jitter: 1)
        let steps = (0..<4).map { index in
            StepDefinition(
                name: "s\(index)", participant: "svc", action: "a\(index)", payload: [:], timeout: .maximum, retry: retry,
                compensate: index < 2 ? CompensationDefinition(action: "undo", payload: [:], timeout: .maximum, retry: retry) : nil,
                pivot: index == 2)
        }
        let definition = WorkflowDefinition(name: "limits", version: Int(Int32.max), deadline: .maximum, steps: steps)
        #expect(definition.validate().isEmpty)
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000), Gen.int(in: 0...9_999).array(of: 1...150)) { seed, choices in
            var chaos = Chaos(definition: definition, seed: UInt64(seed))
            chaos.harness.now = Date.distantFuture - SagaDuration.maximum
            for choice in choices {
                chaos.step(choice)
                #expect(chaos.harness.timers.allSatisfy { $0.due <= Date.latestStorable })
                #expect(chaos.harness.saga.deadline.map { $0 <= Date.latestStorable } ?? true)
            }
            if let violation = chaos.violation { Issue.record("\(violation)") }
        }
    }
}
