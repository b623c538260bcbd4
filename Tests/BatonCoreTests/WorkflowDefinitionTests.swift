import BatonCore
import Foundation
import Testing

@Suite("Workflow definitions")
struct WorkflowDefinitionTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// A minimal valid definition; tests change one thing in it.
    static let base = """
        name: demo
        version: 1
        input:
          required: [amount]
          properties:
            amount: { type: integer, minimum: 1 }
            note: { type: string }
        steps:
          - name: first
            participant: ledger
            action: debit
            payload: { amount: "{{input.amount}}" }
            compensate: { action: refund, payload: { entry: "{{steps.first.output.entry_id}}" } }
          - name: second
            participant: ledger
            action: credit
            pivot: true
            payload: { amount: "{{input.amount}}", entry: "{{steps.first.output.entry_id}}" }
          - name: third
            participant: notify
            action: send
        """

    func issues(_ text: String, format: WorkflowFormat = .yaml) -> [DefinitionIssue] {
        do {
            _ = try WorkflowDefinition.parse(text, format: format, source: "test.yaml")
            return []
        } catch {
            return error.issues
        }
    }

    @Test("the workflows shipped in workflows/ are valid")
    func shippedWorkflowsValidate() throws {
        let directory = Self.repositoryRoot.appendingPathComponent("workflows")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }
        #expect(Set(files).isSuperset(of: ["funds-transfer.yaml", "checkout.yaml"]))
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let definition = try WorkflowDefinition.parse(text, format: .yaml, source: file)
            #expect(definition.name + ".yaml" == file)
        }
    }

    @Test(
        "funds-transfer: debit, fraud, credit as the pivot, notify, a large-transfer report, audit; refund on failure, then tell the customer"
    )
    func fundsTransferShape() throws {
        let url = Self.repositoryRoot.appendingPathComponent("workflows/funds-transfer.yaml")
        let definition = try WorkflowDefinition.parse(String(contentsOf: url, encoding: .utf8), format: .yaml)
        #expect(
            definition.steps.map(\.name) == ["debit-sender", "fraud-check", "credit-receiver", "notify", "report-large-transfer", "audit"])
        #expect(definition.steps[4].when?.description == "input.amount >= 1000000")
        #expect(definition.failureHandlers.map(\.name) == ["notify-failure", "fraud-alert"])
        #expect(definition.failureHandlers[1].when?.description == "steps.fraud-check.error.code == 'fraud_suspected'")
        #expect(definition.pivotIndex == 2)
        #expect(definition.steps[0].compensate?.action == "refund")
        #expect(definition.steps[0].retry.maxAttempts == 5)
        #expect(definition.steps[0].retry.initial == .seconds(1))
        #expect(definition.deadline == .minutes(10))
    }

    @Test("defaults fill in omitted timeout and retry")
    func defaults() throws {
        let definition = try WorkflowDefinition.parse(Self.base, format: .yaml)
        #expect(definition.steps[2].timeout == StepDefinition.defaultTimeout)
        #expect(definition.steps[2].retry == .default)
        #expect(definition.steps[0].compensate?.retry == .defaultCompensation)
    }

    @Test("an error names the file, the step and the field")
    func errorNamesFileStepAndField() {
        let text = Self.base.replacingOccurrences(of: "action: credit", with: "action: credit\n    timeout: 10")
        do {
            _ = try WorkflowDefinition.parse(text, format: .yaml, source: "workflows/demo.yaml")
            Issue.record("a bad duration was accepted")
        } catch {
            #expect(error.issues == [DefinitionIssue(step: "second", field: "timeout", message: error.issues[0].message)])
            #expect(error.description.hasPrefix("workflows/demo.yaml: step 'second': timeout: bad duration '10'"))
        }
    }

    @Test("duplicate step names are rejected")
    func duplicateStepNames() {
        let text = Self.base.replacingOccurrences(of: "name: third", with: "name: first")
        #expect(issues(text).contains { $0.step == "first" && $0.field == "name" && $0.message.contains("already named") })
    }

    @Test("unknown keys are rejected with the nearest known key")
    func unknownKeys() {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    retry: { max_atempts: 3 }")
        let found = issues(text)
        #expect(found.count == 1)
        #expect(found.first?.step == "third")
        #expect(found.first?.field == "retry.max_atempts")
        #expect(found.first?.message.contains("did you mean 'max_attempts'") == true)

        let topLevel = issues(Self.base.replacingOccurrences(of: "version: 1", with: "version: 1\ndeadlin: 5m"))
        #expect(topLevel.map(\.field) == ["deadlin"])
        #expect(topLevel.first?.message.contains("did you mean 'deadline'") == true)
    }

    @Test("bad durations are rejected", arguments: ["10", "5 parsecs", "1.5.s", "-3s", "s"])
    func badDurations(duration: String) {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    timeout: \"\(duration)\"")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "timeout" && $0.message.contains("bad duration") })
    }

    @Test("a reference to a later or unknown step is rejected")
    func unknownStepReference() {
        let later = Self.base.replacingOccurrences(
            of: "payload: { amount: \"{{input.amount}}\" }",
            with: "payload: { amount: \"{{input.amount}}\", credit: \"{{steps.second.output.id}}\" }"
        )
        #expect(issues(later).contains { $0.step == "first" && $0.field == "payload.credit" && $0.message.contains("runs later") })

        let unknown = Self.base.replacingOccurrences(
            of: "{{steps.first.output.entry_id}}\" }\n", with: "{{steps.frist.output.entry_id}}\" }\n")
        #expect(unknown != Self.base)
        #expect(
            issues(unknown).contains { $0.step == "second" && $0.field == "payload.entry" && $0.message.contains("no step named 'frist'") })

        let own = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    payload: { x: \"{{steps.third.output}}\" }")
        #expect(issues(own).contains { $0.step == "third" && $0.message.contains("its own output") })
    }

    @Test("a compensation may use its own step's output")
    func compensationUsesOwnOutput() {
        #expect(issues(Self.base).isEmpty)
    }

    @Test("an input reference outside the input schema is rejected")
    func unknownInputReference() {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    payload: { to: \"{{input.email}}\" }")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "payload.to" && $0.message.contains("no field 'email'") })

        // Without a schema, any input field may be referenced.
        let schemaless = """
            name: open
            version: 1
            steps:
              - { name: a, participant: p, action: x, payload: { to: "{{input.email}}" } }
            """
        #expect(issues(schemaless).isEmpty)
    }

    @Test(
        "malformed placeholders are rejected", arguments: ["{{input.amount", "{{}}", "{{wallet.id}}", "{{steps.first}}", "{{saga.secret}}"])
    func malformedPlaceholders(placeholder: String) {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    payload: { x: \"\(placeholder)\" }")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "payload.x" })
    }

    @Test("a compensatable step after the pivot is rejected")
    func compensationAfterPivot() {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    compensate: { action: unsend }")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "compensate" && $0.message.contains("after the pivot") })
    }

    @Test("the pivot cannot have a compensation")
    func pivotWithCompensation() {
        let text = Self.base.replacingOccurrences(of: "pivot: true", with: "pivot: true\n    compensate: { action: debit }")
        #expect(issues(text).contains { $0.step == "second" && $0.field == "compensate" && $0.message.contains("point of no return") })
    }

    @Test("more than one pivot is rejected")
    func twoPivots() {
        let text = Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    pivot: true")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "pivot" && $0.message.contains("only one step") })
    }

    @Test("every problem is reported, not only the first")
    func reportsEveryProblem() {
        let text = """
            name: bad name
            version: 0
            steps:
              - { name: a, participant: p, action: x, timeout: soon, retry: { max_attempts: 0, jitter: 2 } }
              - { name: a, participant: p, actoin: y }
            """
        let fields = Set(issues(text).map { "\($0.step ?? "-"):\($0.field)" })
        #expect(
            fields.isSuperset(of: [
                "-:name", "-:version", "a:timeout", "a:retry.max_attempts", "a:retry.jitter", "a:actoin", "a:action",
            ])
        )
    }

    @Test("a malformed field does not hide rule violations elsewhere")
    func shapeErrorsDoNotHideRuleErrors() {
        let text = Self.base
            .replacingOccurrences(of: "action: debit", with: "action: debit\n    timeout: 10")
            .replacingOccurrences(
                of: "action: send", with: "action: send\n    payload: { to: \"{{input.email}}\" }\n    compensate: { action: x }")
        let found = Set(issues(text).map { "\($0.step ?? "-"):\($0.field)" })
        #expect(found == ["first:timeout", "third:payload.to", "third:compensate"])
    }

    @Test("identifiers that would break NATS subjects are rejected", arguments: ["led.ger", "led ger", "*", ">"])
    func subjectSafeIdentifiers(participant: String) {
        let text = Self.base.replacingOccurrences(of: "participant: notify", with: "participant: \"\(participant)\"")
        #expect(issues(text).contains { $0.step == "third" && $0.field == "participant" })
    }

    @Test("JSON definitions are accepted and hash the same as the YAML they mirror")
    func jsonAndYamlHashAlike() throws {
        let yaml = try WorkflowDefinition.parse(Self.base, format: .yaml)
        let json = """
            {"steps": [
              {"name": "first", "participant": "ledger", "action": "debit", "payload": {"amount": "{{input.amount}}"},
               "timeout": "30000ms",
               "compensate": {"action": "refund", "payload": {"entry": "{{steps.first.output.entry_id}}"}}},
              {"name": "second", "participant": "ledger", "action": "credit", "pivot": true,
               "payload": {"entry": "{{steps.first.output.entry_id}}", "amount": "{{input.amount}}"}},
              {"name": "third", "participant": "notify", "action": "send",
               "retry": {"max_attempts": 3, "backoff": "exponential", "initial": "1s", "max_delay": "30s", "jitter": 0.2}}
            ],
            "input": {"properties": {"note": {"type": "string"}, "amount": {"minimum": 1, "type": "integer"}}, "required": ["amount"]},
            "version": 1, "name": "demo"}
            """
        let parsed = try WorkflowDefinition.parse(json, format: .json)
        #expect(parsed == yaml)
        #expect(parsed.contentHash == yaml.contentHash)
        #expect(yaml.contentHash.count == 64)
    }

    @Test("the hash changes with meaning")
    func hashFollowsMeaning() throws {
        let original = try WorkflowDefinition.parse(Self.base, format: .yaml)
        let changed = try WorkflowDefinition.parse(
            Self.base.replacingOccurrences(of: "action: send", with: "action: send\n    timeout: 31s"), format: .yaml)
        let commented = try WorkflowDefinition.parse("# a comment\n" + Self.base + "\n# trailing", format: .yaml)
        #expect(original.contentHash != changed.contentHash)
        #expect(original.contentHash == commented.contentHash)
    }

    @Test("the canonical form parses back to the same definition")
    func canonicalRoundTrip() throws {
        let definition = try WorkflowDefinition.parse(Self.base, format: .yaml)
        let again = try WorkflowDefinition.parse(String(decoding: definition.canonicalJSON, as: UTF8.self), format: .json)
        #expect(again == definition)
    }

    @Test("saga input is checked against the input schema")
    func inputValidation() throws {
        let schema = try #require(try WorkflowDefinition.parse(Self.base, format: .yaml).input)
        #expect(schema.violations(of: ["amount": 100]).isEmpty)
        #expect(schema.violations(of: ["amount": 100, "extra": "kept"]).isEmpty)
        #expect(schema.violations(of: [:]) == ["input.amount is required"])
        #expect(schema.violations(of: ["amount": "100"]) == ["input.amount must be an integer, not string"])
        #expect(schema.violations(of: ["amount": 0]) == ["input.amount must be at least 1"])
        #expect(schema.violations(of: ["amount": 1.5]) == ["input.amount must be an integer, not number"])
        #expect(schema.violations(of: ["amount": 5, "note": 3]) == ["input.note must be a string, not integer"])
        #expect(schema.violations(of: [1, 2]) == ["input must be a JSON object, not array"])
    }
}
