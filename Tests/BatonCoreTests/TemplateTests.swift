import BatonCore
import Testing

@Suite("Payload templates")
struct TemplateTests {
    let context = TemplateContext(
        input: ["amount": 1250, "account": "acc-1", "tags": ["vip", "new"], "meta": ["channel": "app"]],
        stepOutputs: ["debit": ["entry_id": "e-9", "balance": 100]],
        sagaID: "saga-1",
        workflow: "funds-transfer",
        correlationID: "corr-7"
    )

    @Test("a whole-value placeholder keeps its JSON type")
    func keepsType() throws {
        let template = PayloadTemplate([
            "amount": "{{input.amount}}", "tags": "{{ input.tags }}", "meta": "{{input.meta}}", "balance": "{{steps.debit.output.balance}}",
        ])
        #expect(
            try template.render(context)
                == ["amount": 1250, "tags": ["vip", "new"], "meta": ["channel": "app"], "balance": 100]
        )
    }

    @Test("placeholders inside text are replaced by their text")
    func interpolates() throws {
        let template = PayloadTemplate([
            "ref": "transfer {{saga.id}} of {{input.amount}} from {{input.account}}",
            "nested": ["{{saga.workflow}}/{{saga.correlation_id}}", "{{input.tags.1}}"],
        ])
        #expect(
            try template.render(context)
                == ["ref": "transfer saga-1 of 1250 from acc-1", "nested": ["funds-transfer/corr-7", "new"]]
        )
    }

    @Test("missing data renders as null, or as nothing inside text")
    func missingData() throws {
        let template = PayloadTemplate(["gone": "{{steps.credit.output.id}}", "text": "id={{input.nope}}", "fixed": 5, "flag": true])
        #expect(try template.render(context) == ["gone": nil, "text": "id=", "fixed": 5, "flag": true])
    }

    @Test("references are listed in document order")
    func references() throws {
        let template = PayloadTemplate(["a": "{{input.amount}}", "b": ["x {{steps.debit.output.entry_id}} {{saga.id}}"]])
        #expect(
            try template.references() == [
                .input(path: ["amount"]), .stepOutput(step: "debit", path: ["entry_id"]), .saga(.id),
            ]
        )
    }

    @Test("a malformed placeholder is an error")
    func malformed() {
        #expect(throws: TemplateError.self) { try PayloadTemplate("{{input.amount").render(context) }
        #expect(throws: TemplateError.self) { try PayloadTemplate("{{unknown.root}}").references() }
    }
}
