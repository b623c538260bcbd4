import BatonCore
import Foundation
import PropertyBased
import Testing

@Suite("Strict JSON")
struct JSONParserTests {
    func refusal(_ text: String) -> JSONParseError? {
        do {
            _ = try JSONParser.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test("an integer beyond Int64 is refused from outside, and read as a double from what Baton stored")
    func largeIntegers() throws {
        let text = "[100000000000000000000, 9223372036854775807, -9223372036854775809]"
        #expect(refusal(text)?.kind == .numberOutOfRange)
        #expect(
            try JSONParser.parse(text, largeIntegers: .readAsDouble) == [
                .number(1e20), .integer(.max), .number(-9.223_372_036_854_775_808e18),
            ])
        // Beyond a Double too: still refused.
        #expect(throws: JSONParseError.self) {
            try JSONParser.parse("1" + String(repeating: "0", count: 400), largeIntegers: .readAsDouble)
        }
    }

    @Test("reads every JSON value, keeping integers apart from floats")
    func values() throws {
        let value = try JSONParser.parse(
            #" {"a": [1, -0, 2.5, -1e3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}, "c": [], "d": 9223372036854775807} "#
        )
        #expect(
            value
                == [
                    "a": [1, 0, 2.5, -1000.0, true, false, nil, "x\"\\/\u{08}\u{0C}\n\r\t\u{e9}\u{1F600}"], "b": [:], "c": [],
                    "d": .integer(.max),
                ])
        #expect(try JSONParser.parse("-9223372036854775808") == .integer(.min))
    }

    @Test("duplicate keys are refused, naming the key and where it is")
    func duplicateKeys() {
        let error = refusal(#"{"input": {"amount": 1, "amount": 1000000}}"#)
        #expect(error?.kind == .duplicateKey)
        #expect(error?.path == "input")
        #expect(error?.message.contains("'amount'") == true)
    }

    @Test("integers beyond 64 bits and infinite numbers are refused, naming where")
    func outOfRange() {
        let integer = refusal(#"{"input": {"items": [{"amount": 9223372036854775808}]}}"#)
        #expect(integer?.kind == .numberOutOfRange)
        #expect(integer?.path == "input.items[0].amount")
        #expect(refusal("123456789012345678901234567890")?.kind == .numberOutOfRange)
        #expect(refusal("1e400")?.kind == .numberOutOfRange)
    }

    @Test(
        "malformed text is refused as malformed",
        arguments: [
            "", "{", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "+1", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"", "nul", "[1] 2", "{'a': 1}",
            "\"\\u12\"", "tru",
        ])
    func malformed(_ text: String) {
        #expect(refusal(text)?.kind == .malformed)
    }

    @Test("invalid UTF-8 is refused")
    func invalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test("nesting is bounded")
    func nesting() {
        #expect(refusal(String(repeating: "[", count: 65) + String(repeating: "]", count: 65))?.kind == .tooDeep)
        #expect(refusal(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) == nil)
        #expect(refusal(String(repeating: "{\"a\":", count: 1_000_000))?.kind == .tooDeep)
    }

    @Test("what JSONDecoder reads, the strict parser reads the same")
    func agreesWithFoundation() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max)) { seed in
            var random = BatonCore.SeededRandomNumberGenerator(seed: UInt64(seed))
            let value = Self.randomValue(depth: 0, &random)
            let text = value.canonicalJSON
            let strict = try? JSONParser.parse(text)
            #expect(strict != nil)
            #expect(strict == (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))))
        }
    }

    @Test("random bytes never trap the parser")
    func randomBytes() async {
        await propertyCheck(count: 1000, input: Gen.int(in: 0...255).array(of: 0...64)) { bytes in
            let alphabet = Array(#"{}[]",:-+.eE0123456789tfnrulasx\ "#.utf8)
            let text = bytes.map { $0 % 2 == 0 ? alphabet[$0 % alphabet.count] : UInt8($0) }
            _ = try? JSONParser.parse(text)
        }
    }

    static func randomValue(depth: Int, _ random: inout BatonCore.SeededRandomNumberGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .integer(Int64.random(in: .min ... .max, using: &random))
        case 3: return .number(Double.random(in: -1e6...1e6, using: &random))
        case 4: return .string(String((0..<Int.random(in: 0...8, using: &random)).map { _ in "aé\"\\\n😀/".randomElement(using: &random)! }))
        case 5: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in randomValue(depth: depth + 1, &random) })
        default:
            return .object(
                Dictionary(
                    (0..<Int.random(in: 0...4, using: &random)).map { ("k\($0)", randomValue(depth: depth + 1, &random)) },
                    uniquingKeysWith: { first, _ in first }))
        }
    }
}
