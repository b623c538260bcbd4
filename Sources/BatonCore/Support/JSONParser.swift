/// A strict JSON reader (RFC 8259) for bytes from outside: request bodies, definitions, replies.
///
/// Stricter than `JSONDecoder` where leniency would let two readers disagree or lose precision:
/// - a duplicate key in an object is an error (one reader keeps the first, a proxy may keep the
///   last, and they would act on different requests);
/// - a number written without fraction or exponent must fit an `Int64` (money in minor units never
///   silently becomes a `Double`); any other number must be finite;
/// - nesting is bounded, so a hostile document cannot exhaust the stack;
/// - strings must be valid UTF-8 with control characters escaped.
///
/// Every error names where it is (`input.items[2].amount`) and what is wrong.
public struct JSONParser {
    /// The deepest nesting of arrays and objects accepted.
    public static let defaultMaximumDepth = 64

    /// What to do with a number written as an integer that does not fit an `Int64`.
    public enum LargeIntegers: Sendable {
        /// Refuse it: from outside, such a number is an amount that would lose digits.
        case refuse
        /// Read it as a `Double`: for JSON that Baton wrote itself, where such a number was a
        /// `Double` that PostgreSQL's `jsonb` wrote back in plain digits (`1e20` comes back as
        /// `100000000000000000000`).
        case readAsDouble
    }

    /// Parses one JSON document.
    /// - Parameters:
    ///   - bytes: UTF-8 text.
    ///   - maximumDepth: The deepest nesting of arrays and objects accepted.
    ///   - largeIntegers: What to do with an integer beyond the `Int64` range.
    /// - Throws: ``JSONParseError`` naming the path and the problem.
    public static func parse(
        _ bytes: some Collection<UInt8>, maximumDepth: Int = defaultMaximumDepth, largeIntegers: LargeIntegers = .refuse
    ) throws(JSONParseError)
        -> JSONValue
    {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            var parser = Parser(bytes: buffer, maximumDepth: maximumDepth, largeIntegers: largeIntegers)
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.position == buffer.count else { throw parser.error(.malformed, "unexpected text after the JSON value") }
            return value
        }
    }

    /// Parses one JSON document from a string.
    public static func parse(
        _ text: String, maximumDepth: Int = defaultMaximumDepth, largeIntegers: LargeIntegers = .refuse
    ) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maximumDepth: maximumDepth, largeIntegers: largeIntegers)
    }
}

/// Why a JSON document was refused, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// Not JSON at all (a syntax error).
        case malformed
        /// An object holds the same key twice.
        case duplicateKey
        /// An integer beyond `Int64`, or a number beyond `Double`'s range.
        case numberOutOfRange
        /// Arrays and objects nested deeper than allowed.
        case tooDeep
    }

    public var kind: Kind
    /// Where: `input.items[2]`, or empty for the document itself.
    public var path: String
    /// The byte offset the problem was found at.
    public var offset: Int
    public var message: String

    /// Whether the document is well-formed JSON that Baton refuses on content (a duplicate key or
    /// an out-of-range number), rather than broken text.
    public var isSemantic: Bool { kind == .duplicateKey || kind == .numberOutOfRange }

    public var description: String {
        let location = path.isEmpty ? "" : "\(path): "
        return "\(location)\(message) (at byte \(offset))"
    }
}

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    let largeIntegers: JSONParser.LargeIntegers
    var position = 0
    /// Object keys and array indexes from the document down to the value being read, so that an
    /// error can say where it is; kept as components and joined only when an error is thrown.
    var path: [PathComponent] = []

    enum PathComponent {
        case key(String)
        case index(Int)
    }

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int, largeIntegers: JSONParser.LargeIntegers) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
        self.largeIntegers = largeIntegers
    }

    func error(_ kind: JSONParseError.Kind, _ message: String) -> JSONParseError {
        var text = ""
        for component in path {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return JSONParseError(kind: kind, path: text, offset: position, message: message)
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    mutating func expect(_ literal: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error(.malformed, "unexpected end of the document") }
        for offset in 0..<count where bytes[position + offset] != literal.utf8Start[offset] {
            throw error(.malformed, "unexpected character")
        }
        position += count
        return value
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error(.malformed, "unexpected end of the document") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error(.malformed, "unexpected character '\(Unicode.Scalar(byte).escaped(asASCII: true))'")
        }
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw error(.tooDeep, "nested deeper than \(maximumDepth) levels") }
        position += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error(.malformed, "expected a key in double quotes") }
            let keyStart = position
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error(.malformed, "expected ':' after the key") }
            position += 1
            skipWhitespace()
            path.append(.key(key))
            let member = try value(depth: depth)
            path.removeLast()
            guard members.updateValue(member, forKey: key) == nil else {
                position = keyStart
                throw error(.duplicateKey, "the key '\(key)' appears twice")
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return .object(members)
            default: throw error(.malformed, "expected ',' or '}' in an object")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw error(.tooDeep, "nested deeper than \(maximumDepth) levels") }
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            path.append(.index(elements.count))
            elements.append(try value(depth: depth))
            path.removeLast()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return .array(elements)
            default: throw error(.malformed, "expected ',' or ']' in an array")
            }
        }
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = position
        var integral = true
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, isDigit(first) else { throw error(.malformed, "a number needs digits") }
        position += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if current == UInt8(ascii: ".") {
            integral = false
            position += 1
            guard let digit = current, isDigit(digit) else { throw error(.malformed, "a number needs digits after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard let digit = current, isDigit(digit) else { throw error(.malformed, "a number needs digits in its exponent") }
            skipDigits()
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if integral {
            if largeIntegers == .readAsDouble, Int64(text) == nil, let number = Double(text), number.isFinite { return .number(number) }
            guard let integer = Int64(text) else {
                position = start
                throw error(.numberOutOfRange, "the integer \(text.prefix(40)) is beyond the 64-bit range (±9223372036854775807)")
            }
            return .integer(integer)
        }
        guard let number = Double(text), number.isFinite else {
            position = start
            throw error(.numberOutOfRange, "the number \(text.prefix(40)) is beyond the range of a 64-bit float")
        }
        return .number(number)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func skipDigits() {
        while let byte = current, isDigit(byte) { position += 1 }
    }

    mutating func string() throws(JSONParseError) -> String {
        position += 1
        let start = position
        // The common case, no escapes: one scan, then one UTF-8 validation.
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw error(.malformed, "a control character in a string must be escaped") }
            position += 1
        }
        guard let stop = current else { throw error(.malformed, "a string is not closed") }
        if stop == UInt8(ascii: "\"") {
            let text = try utf8(start..<position)
            position += 1
            return text
        }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: try utf8(start..<position).unicodeScalars)
        while true {
            guard let byte = current else { throw error(.malformed, "a string is not closed") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(scalars)
            case UInt8(ascii: "\\"):
                position += 1
                scalars.append(try escape())
            case ..<0x20:
                throw error(.malformed, "a control character in a string must be escaped")
            default:
                let runStart = position
                while let next = current, next != UInt8(ascii: "\""), next != UInt8(ascii: "\\"), next >= 0x20 { position += 1 }
                scalars.append(contentsOf: try utf8(runStart..<position).unicodeScalars)
            }
        }
    }

    func utf8(_ range: Range<Int>) throws(JSONParseError) -> String {
        guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) else {
            throw error(.malformed, "a string is not valid UTF-8")
        }
        return text
    }

    mutating func escape() throws(JSONParseError) -> Unicode.Scalar {
        guard let byte = current else { throw error(.malformed, "a string is not closed") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try hex4()
            if (0xD800...0xDBFF).contains(unit) {
                // A high surrogate must be followed by an escaped low one.
                guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                    throw error(.malformed, "an unpaired surrogate in a \\u escape")
                }
                position += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw error(.malformed, "an unpaired surrogate in a \\u escape") }
                let combined = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                guard let scalar = Unicode.Scalar(combined) else { throw error(.malformed, "an invalid \\u escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(unit) else { throw error(.malformed, "an unpaired surrogate in a \\u escape") }
            return scalar
        default:
            throw error(.malformed, "an unknown escape in a string")
        }
    }

    mutating func hex4() throws(JSONParseError) -> UInt16 {
        guard position + 4 <= bytes.count else { throw error(.malformed, "a \\u escape needs four hex digits") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.malformed, "a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }
}
