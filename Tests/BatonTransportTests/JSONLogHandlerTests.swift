import Foundation
import Logging
import Testing

@testable import BatonLogging

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("one JSON object per line, metadata keys at the top level, strings escaped")
    func line() throws {
        let text = JSONLogHandler.line(
            time: Date(timeIntervalSince1970: 0), level: .notice, label: "baton", message: "step \"debit\"\nfailed",
            source: "BatonEngine",
            metadata: [
                "saga.id": "0193", "saga.attempt": .stringConvertible(2), "tags": ["a", "b"], "nested": ["k": "v"],
                "level": "shadowed",
            ])
        #expect(text.hasSuffix("}\n"))
        #expect(text.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "notice")
        #expect(object["message"] as? String == "step \"debit\"\nfailed")
        #expect(object["logger"] as? String == "baton")
        #expect(object["saga.id"] as? String == "0193")
        #expect(object["saga.attempt"] as? String == "2")
        #expect(object["tags"] as? [String] == ["a", "b"])
        #expect((object["nested"] as? [String: String])?["k"] == "v")
        #expect(object["time"] as? String == "1970-01-01T00:00:00.000Z")
    }

    @Test("control characters are escaped as \\u00XX")
    func controlCharacters() throws {
        let text = JSONLogHandler.line(time: .now, level: .info, label: "x", message: "a\u{01}b", source: "s", metadata: [:])
        #expect(text.contains(#"a\u0001b"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "a\u{01}b")
    }
}
