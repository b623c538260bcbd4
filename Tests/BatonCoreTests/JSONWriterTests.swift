import BatonCore
import Foundation
import PropertyBased
import Testing

@Suite("JSON writer")
struct JSONWriterTests {
    @Test("what it writes, both parsers read back as the same value")
    func roundTrip() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max)) { seed in
            var random = BatonCore.SeededRandomNumberGenerator(seed: UInt64(seed))
            let value = JSONParserTests.randomValue(depth: 0, &random)
            let text = JSONWriter.text(of: value)
            #expect((try? JSONParser.parse(text)) == value)
            #expect((try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) == value)
        }
    }

    @Test("control characters, quotes and backslashes are escaped; keys come sorted")
    func escaping() throws {
        let value: JSONValue = ["b": "\u{01}\u{1F}\t\r\n\"\\/é", "a": [1, 2.5, nil, true, [:], []]]
        let text = JSONWriter.text(of: value)
        #expect(text == #"{"a":[1,2.5,null,true,{},[]],"b":"\u0001\u001f\t\r\n\"\\/é"}"#)
        #expect(try JSONParser.parse(text) == value)
    }

    @Test("a command and a step error read back through their Codable forms")
    func sagaShapes() throws {
        let deadline = Date(timeIntervalSinceReferenceDate: 786_300_123.456_789)
        var command = StepCommand(
            sagaID: "0193c0de-0000-7000-8000-000000000001", step: "debit", participant: "ledger", action: "debit",
            direction: .compensation, attempt: 3, idempotencyKey: "k", deadline: deadline,
            payload: ["amount": 1250, "note": "a \"quoted\" note"], correlationID: nil)
        for (traceparent, workflow) in [(nil, nil), ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "funds-transfer")] {
            command.traceparent = traceparent
            command.workflow = workflow
            command.correlationID = workflow
            var json = JSONWriter()
            json.value(command)
            #expect(try JSONDecoder().decode(StepCommand.self, from: Data(json.bytes)) == command)
        }
        let error = StepError(code: "insufficient_funds", message: "balance\n0", direction: .action, attempt: 2)
        var json = JSONWriter()
        json.value(error)
        #expect(try JSONDecoder().decode(StepError.self, from: Data(json.bytes)) == error)
    }
}
