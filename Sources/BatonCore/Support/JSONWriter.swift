/// Writes compact JSON text member by member, for the paths that run on every step (a saga's
/// write set, a command): `JSONEncoder` spends most of its time there on generic containers,
/// boxing and key conversion, and was the largest single cost of `baton serve` in a profile.
///
/// The writer only appends; it checks nothing a caller could get wrong at run time: each `key`
/// must be followed by one value, and values in an object need keys. Object keys of a
/// ``JSONValue`` are written sorted, so equal values write equal text.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// No member or element has been written yet in the innermost open object or array.
    private var atStart = true
    /// A key was just written: the next value is its value, with no separator before it.
    private var afterKey = false

    public init() {}

    /// The text written so far.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The JSON text of a value.
    public static func text(of value: JSONValue) -> String {
        var writer = JSONWriter()
        writer.value(value)
        return writer.text
    }

    private mutating func beginValue() {
        if afterKey {
            afterKey = false
        } else if atStart {
            atStart = false
        } else {
            bytes.append(UInt8(ascii: ","))
        }
    }

    public mutating func key(_ name: String) {
        if atStart { atStart = false } else { bytes.append(UInt8(ascii: ",")) }
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func object(_ members: (inout JSONWriter) throws -> Void) rethrows {
        beginValue()
        bytes.append(UInt8(ascii: "{"))
        atStart = true
        try members(&self)
        bytes.append(UInt8(ascii: "}"))
        atStart = false
    }

    public mutating func array<Elements: Sequence>(
        _ elements: Elements, _ element: (inout JSONWriter, Elements.Element) throws -> Void
    ) rethrows {
        beginValue()
        bytes.append(UInt8(ascii: "["))
        atStart = true
        for item in elements { try element(&self, item) }
        bytes.append(UInt8(ascii: "]"))
        atStart = false
    }

    /// Text that is JSON already (a document another writer made), copied as it is.
    public mutating func raw(_ json: String) {
        beginValue()
        bytes.append(contentsOf: json.utf8)
    }

    public mutating func null() {
        beginValue()
        bytes.append(contentsOf: "null".utf8)
    }

    public mutating func string(_ value: String) {
        beginValue()
        appendQuoted(value)
    }

    public mutating func integer(_ value: Int64) {
        beginValue()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ value: Bool) {
        beginValue()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A finite number (`JSONValue` never holds another: input with one is refused when parsed).
    public mutating func number(_ value: Double) {
        beginValue()
        bytes.append(contentsOf: (value.isFinite ? value.description : "null").utf8)
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .integer(let whole): integer(whole)
        case .number(let double): number(double)
        case .string(let text): string(text)
        case .array(let elements): array(elements) { $0.value($1) }
        case .object(let members):
            object { writer in
                for name in members.keys.sorted() {
                    writer.key(name)
                    writer.value(members[name]!)
                }
            }
        }
    }

    // MARK: Members, for the common shapes

    public mutating func member(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { null() }
    }

    public mutating func member(_ name: String, _ value: Int) {
        key(name)
        integer(Int64(value))
    }

    public mutating func member(_ name: String, _ value: Int64?) {
        key(name)
        if let value { integer(value) } else { null() }
    }

    public mutating func member(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    private mutating func appendQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
