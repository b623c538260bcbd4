/// A step's `when:`: the step runs only when this holds over the saga's input and the earlier
/// steps, and is otherwise `SKIPPED` with the condition in the history.
///
/// The language is small on purpose (docs/workflows.md, Conditions): references (`input.amount`,
/// `steps.fraud-check.output.score`, `steps.fraud-check.status`, `steps.fraud-check.error.code`),
/// literals (numbers, 'strings' or "strings", `true`, `false`, `null`), the comparisons `==`, `!=`,
/// `<`, `<=`, `>`, `>=`, `exists(reference)`, a bare reference (true when it is `true`), `and`, `or`,
/// `not` and parentheses. Nothing in it can loop, call out or fail at run time: a comparison of
/// values that cannot be ordered is simply false.
public struct StepCondition: Sendable, Hashable, CustomStringConvertible {
    public let expression: ConditionExpression

    /// The longest condition accepted, in characters, and how deeply it may nest.
    public static let maximumLength = 1_000
    public static let maximumNesting = 16

    /// Parses a condition.
    /// - Throws: ``ConditionError`` saying where and what is wrong.
    public init(parsing text: String) throws(ConditionError) {
        guard text.count <= Self.maximumLength else {
            throw ConditionError("is \(text.count) characters long; a condition may have at most \(Self.maximumLength)")
        }
        var parser = ConditionParser(tokens: try ConditionLexer.tokens(of: text))
        expression = try parser.parseCondition()
    }

    public init(_ expression: ConditionExpression) { self.expression = expression }

    /// The condition written out in one normal form: what the definition's hash covers, so that
    /// spacing and redundant parentheses do not change it.
    public var description: String { expression.description }

    /// Every reference the condition reads.
    public var references: [ConditionReference] { expression.references }

    /// Whether the condition holds.
    /// - Parameters:
    ///   - input: The saga's input.
    ///   - step: The state of the step with a name, if there is one.
    public func holds(input: JSONValue, step: (String) -> StepState?) -> Bool {
        expression.holds { reference in
            switch reference {
            case .input(let path): input.value(at: path)
            case .stepOutput(let name, let path): step(name)?.output?.value(at: path)
            case .stepStatus(let name): step(name).map { .string($0.status.rawValue) }
            case .stepErrorCode(let name): step(name)?.error.map { .string($0.code) }
            }
        }
    }
}

extension StepCondition: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do throws(ConditionError) {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The parsed form of a ``StepCondition``.
public indirect enum ConditionExpression: Sendable, Hashable, CustomStringConvertible {
    case and(ConditionExpression, ConditionExpression)
    case or(ConditionExpression, ConditionExpression)
    case not(ConditionExpression)
    case compare(ConditionOperand, ComparisonOperator, ConditionOperand)
    /// `exists(reference)`: the value is there and not `null`.
    case exists(ConditionReference)
    /// A bare reference: holds when the value is `true`.
    case isTrue(ConditionReference)

    public var description: String {
        switch self {
        case .and(let left, let right): "\(left.grouped(inside: .and)) and \(right.grouped(inside: .and))"
        case .or(let left, let right): "\(left.grouped(inside: .or)) or \(right.grouped(inside: .or))"
        case .not(let operand): "not \(operand.grouped(inside: .not))"
        case .compare(let left, let comparison, let right): "\(left) \(comparison.rawValue) \(right)"
        case .exists(let reference): "exists(\(reference))"
        case .isTrue(let reference): reference.description
        }
    }

    /// How tightly each form binds, for writing parentheses only where they are needed.
    private enum Precedence: Int { case or, and, not, atom }

    private var precedence: Precedence {
        switch self {
        case .or: .or
        case .and: .and
        case .not: .not
        case .compare, .exists, .isTrue: .atom
        }
    }

    private func grouped(inside parent: Precedence) -> String {
        precedence.rawValue < parent.rawValue ? "(\(description))" : description
    }

    var references: [ConditionReference] {
        switch self {
        case .and(let left, let right), .or(let left, let right): left.references + right.references
        case .not(let operand): operand.references
        case .compare(let left, _, let right): [left, right].compactMap(\.reference)
        case .exists(let reference), .isTrue(let reference): [reference]
        }
    }

    func holds(_ value: (ConditionReference) -> JSONValue?) -> Bool {
        switch self {
        case .and(let left, let right): left.holds(value) && right.holds(value)
        case .or(let left, let right): left.holds(value) || right.holds(value)
        case .not(let operand): !operand.holds(value)
        case .exists(let reference): (value(reference) ?? .null) != .null
        case .isTrue(let reference): value(reference) == .bool(true)
        case .compare(let left, let comparison, let right):
            comparison.holds(left.resolve(value) ?? .null, right.resolve(value) ?? .null)
        }
    }
}

/// One side of a comparison.
public enum ConditionOperand: Sendable, Hashable, CustomStringConvertible {
    case reference(ConditionReference)
    case literal(JSONValue)

    var reference: ConditionReference? { if case .reference(let reference) = self { reference } else { nil } }

    func resolve(_ value: (ConditionReference) -> JSONValue?) -> JSONValue? {
        switch self {
        case .reference(let reference): value(reference)
        case .literal(let literal): literal
        }
    }

    public var description: String {
        switch self {
        case .reference(let reference): reference.description
        // The lexer has no escapes: a string holding ' was written in double quotes.
        case .literal(.string(let text)): text.contains("'") ? "\"\(text)\"" : "'\(text)'"
        case .literal(let literal): literal.canonicalJSON
        }
    }
}

/// What a condition may read.
public enum ConditionReference: Sendable, Hashable, CustomStringConvertible {
    /// `input`, `input.amount`: the saga's input or a path into it.
    case input(path: [String])
    /// `steps.<step>.output[.<field>…]`.
    case stepOutput(step: String, path: [String])
    /// `steps.<step>.status`: `SUCCEEDED`, `SKIPPED`, `FAILED`, … (``StepStatus``).
    case stepStatus(step: String)
    /// `steps.<step>.error.code`: the code of the step's last error (`fraud_suspected`, `timeout`).
    case stepErrorCode(step: String)

    /// The step the reference reads, if it reads one.
    public var step: String? {
        switch self {
        case .input: nil
        case .stepOutput(let step, _), .stepStatus(let step), .stepErrorCode(let step): step
        }
    }

    public var description: String {
        switch self {
        case .input(let path): (["input"] + path).joined(separator: ".")
        case .stepOutput(let step, let path): (["steps", step, "output"] + path).joined(separator: ".")
        case .stepStatus(let step): "steps.\(step).status"
        case .stepErrorCode(let step): "steps.\(step).error.code"
        }
    }

    init(parsing text: String) throws(ConditionError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty) else { throw ConditionError("'\(text)' has an empty name or path part") }
        switch parts[0] {
        case "input":
            self = .input(path: Array(parts.dropFirst()))
        case "steps" where parts.count >= 3 && parts[2] == "output":
            self = .stepOutput(step: parts[1], path: Array(parts.dropFirst(3)))
        case "steps" where parts.count == 3 && parts[2] == "status":
            self = .stepStatus(step: parts[1])
        case "steps" where parts.count == 4 && parts[2] == "error" && parts[3] == "code":
            self = .stepErrorCode(step: parts[1])
        case "steps":
            throw ConditionError(
                "'\(text)': a step reference is steps.<step>.output[.<field>…], steps.<step>.status or steps.<step>.error.code")
        default:
            throw ConditionError("'\(text)': a reference starts with input or steps")
        }
    }
}

/// The comparisons a condition may make.
public enum ComparisonOperator: String, Sendable, Hashable, CaseIterable {
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="

    /// Whether the comparison orders its operands (numbers with numbers, strings with strings).
    public var orders: Bool { self != .equal && self != .notEqual }

    func holds(_ left: JSONValue, _ right: JSONValue) -> Bool {
        switch self {
        case .equal: return Self.equal(left, right)
        case .notEqual: return !Self.equal(left, right)
        default: break
        }
        let order: Int
        if let left = left.conditionNumber, let right = right.conditionNumber {
            order = left < right ? -1 : (left > right ? 1 : 0)
        } else if case .string(let left) = left, case .string(let right) = right {
            // By Unicode scalars, the same on every machine whatever its locale.
            order = left.unicodeScalars.lexicographicallyPrecedes(right.unicodeScalars) ? -1 : (left == right ? 0 : 1)
        } else {
            return false
        }
        switch self {
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        default: return order >= 0
        }
    }

    /// JSON equality, where `2` and `2.0` are equal.
    private static func equal(_ left: JSONValue, _ right: JSONValue) -> Bool {
        if let left = left.conditionNumber, let right = right.conditionNumber { return left == right }
        return left == right
    }
}

extension JSONValue {
    /// The value as a number, for comparisons; integers beyond 2^53 compare approximately.
    fileprivate var conditionNumber: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
}

/// A condition that cannot be understood.
public struct ConditionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Reading

private enum ConditionToken: Hashable {
    case reference(String)
    case literal(JSONValue)
    case comparison(ComparisonOperator)
    case and, or, not, exists
    case open, close
}

private enum ConditionLexer {
    static func tokens(of text: String) throws(ConditionError) -> [ConditionToken] {
        var tokens: [ConditionToken] = []
        let characters = Array(text.unicodeScalars)
        var index = 0
        func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-" || scalar == "."
        }
        while index < characters.count {
            let scalar = characters[index]
            switch scalar {
            case " ", "\t", "\n", "\r":
                index += 1
            case "(":
                tokens.append(.open)
                index += 1
            case ")":
                tokens.append(.close)
                index += 1
            case "=", "!", "<", ">":
                let next = index + 1 < characters.count ? characters[index + 1] : " "
                let pair = String(scalar) + String(next)
                if let comparison = ComparisonOperator(rawValue: pair), next == "=" {
                    tokens.append(.comparison(comparison))
                    index += 2
                } else if let comparison = ComparisonOperator(rawValue: String(scalar)) {
                    tokens.append(.comparison(comparison))
                    index += 1
                } else {
                    throw ConditionError("'\(scalar)' at character \(index + 1) is not an operator (==, !=, <, <=, >, >=)")
                }
            case "'", "\"":
                var end = index + 1
                while end < characters.count && characters[end] != scalar { end += 1 }
                guard end < characters.count else { throw ConditionError("the string starting at character \(index + 1) is not closed") }
                var string = String.UnicodeScalarView()
                string.append(contentsOf: characters[(index + 1)..<end])
                tokens.append(.literal(.string(String(string))))
                index = end + 1
            case "-", "0"..."9":
                var end = index + 1
                while end < characters.count, ("0"..."9").contains(characters[end]) || ".eE+-".unicodeScalars.contains(characters[end]) {
                    end += 1
                }
                var number = String.UnicodeScalarView()
                number.append(contentsOf: characters[index..<end])
                let text = String(number)
                if let integer = Int64(text) {
                    tokens.append(.literal(.integer(integer)))
                } else if let double = Double(text), double.isFinite {
                    tokens.append(.literal(.number(double)))
                } else {
                    throw ConditionError("'\(text)' is not a number")
                }
                index = end
            default:
                guard scalar.properties.isAlphabetic else {
                    throw ConditionError("'\(scalar)' at character \(index + 1) is not part of a condition")
                }
                var end = index + 1
                while end < characters.count && isNameCharacter(characters[end]) { end += 1 }
                var name = String.UnicodeScalarView()
                name.append(contentsOf: characters[index..<end])
                let word = String(name)
                switch word {
                case "and": tokens.append(.and)
                case "or": tokens.append(.or)
                case "not": tokens.append(.not)
                case "exists": tokens.append(.exists)
                case "true": tokens.append(.literal(.bool(true)))
                case "false": tokens.append(.literal(.bool(false)))
                case "null": tokens.append(.literal(.null))
                default: tokens.append(.reference(word))
                }
                index = end
            }
        }
        return tokens
    }
}

/// condition := or; or := and ("or" and)*; and := unary ("and" unary)*;
/// unary := "not" unary | "(" or ")" | "exists" "(" reference ")" | operand (comparison operand)?
private struct ConditionParser {
    let tokens: [ConditionToken]
    var position = 0
    var depth = 0

    init(tokens: [ConditionToken]) { self.tokens = tokens }

    mutating func parseCondition() throws(ConditionError) -> ConditionExpression {
        guard !tokens.isEmpty else { throw ConditionError("is empty") }
        let expression = try parseOr()
        guard position == tokens.count else { throw ConditionError("unexpected \(describe(tokens[position])) after a complete condition") }
        return expression
    }

    private var next: ConditionToken? { position < tokens.count ? tokens[position] : nil }

    private mutating func parseOr() throws(ConditionError) -> ConditionExpression {
        var expression = try parseAnd()
        while next == .or {
            position += 1
            expression = .or(expression, try parseAnd())
        }
        return expression
    }

    private mutating func parseAnd() throws(ConditionError) -> ConditionExpression {
        var expression = try parseUnary()
        while next == .and {
            position += 1
            expression = .and(expression, try parseUnary())
        }
        return expression
    }

    private mutating func parseUnary() throws(ConditionError) -> ConditionExpression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= StepCondition.maximumNesting else {
            throw ConditionError("nests more than \(StepCondition.maximumNesting) levels deep")
        }
        switch next {
        case .not:
            position += 1
            return .not(try parseUnary())
        case .open:
            position += 1
            let inner = try parseOr()
            try expect(.close, "')'")
            return inner
        case .exists:
            position += 1
            try expect(.open, "'(' after exists")
            guard case .reference(let text) = next else { throw ConditionError("exists( needs a reference such as input.coupon") }
            position += 1
            let reference = try ConditionReference(parsing: text)
            try expect(.close, "')' after exists(\(text)")
            return .exists(reference)
        default:
            let left = try parseOperand()
            guard case .comparison(let comparison) = next else {
                guard case .reference(let reference) = left else {
                    throw ConditionError("the literal \(left) needs a comparison (==, !=, <, <=, >, >=)")
                }
                return .isTrue(reference)
            }
            position += 1
            let right = try parseOperand()
            return .compare(left, comparison, right)
        }
    }

    private mutating func parseOperand() throws(ConditionError) -> ConditionOperand {
        switch next {
        case .reference(let text):
            position += 1
            return .reference(try ConditionReference(parsing: text))
        case .literal(let value):
            position += 1
            return .literal(value)
        case let token?:
            throw ConditionError("expected a reference or a value, found \(describe(token))")
        case nil:
            throw ConditionError("ends where a reference or a value was expected")
        }
    }

    private mutating func expect(_ token: ConditionToken, _ what: String) throws(ConditionError) {
        guard next == token else {
            throw ConditionError("expected \(what), found \(next.map(describe) ?? "the end")")
        }
        position += 1
    }

    private func describe(_ token: ConditionToken) -> String {
        switch token {
        case .reference(let text): "'\(text)'"
        case .literal(let value): ConditionOperand.literal(value).description
        case .comparison(let comparison): "'\(comparison.rawValue)'"
        case .and: "'and'"
        case .or: "'or'"
        case .not: "'not'"
        case .exists: "'exists'"
        case .open: "'('"
        case .close: "')'"
        }
    }
}
