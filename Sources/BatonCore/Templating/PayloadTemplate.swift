/// A step's payload: JSON whose strings may hold `{{…}}` placeholders.
///
/// - A string that is exactly one placeholder (`"{{input.amount}}"`) becomes the referenced value
///   with its JSON type kept: a number stays a number, an object stays an object.
/// - A placeholder inside longer text (`"transfer {{saga.id}}"`) is replaced by the value's text:
///   strings as they are, other values as compact JSON.
/// - A reference to data that is not there (an optional input field left out, the output of a step
///   that timed out) renders as `null`, or as empty text inside a longer string.
public struct PayloadTemplate: Sendable, Hashable {
    public var template: JSONValue

    public init(_ template: JSONValue) { self.template = template }

    /// Every placeholder in the template, in document order.
    /// - Throws: ``TemplateError`` for the first malformed placeholder.
    public func references() throws(TemplateError) -> [TemplateReference] {
        var found: [TemplateReference] = []
        try Self.collect(template, into: &found)
        return found
    }

    /// The payload with every placeholder replaced from `context`.
    /// - Throws: ``TemplateError`` for a malformed placeholder (validated definitions have none).
    public func render(_ context: TemplateContext) throws(TemplateError) -> JSONValue {
        try Self.render(template, context)
    }

    private static func collect(_ value: JSONValue, into found: inout [TemplateReference]) throws(TemplateError) {
        switch value {
        case .string(let text):
            for segment in try TemplateSegment.parse(text) {
                if case .reference(let reference) = segment { found.append(reference) }
            }
        case .array(let elements):
            for element in elements { try collect(element, into: &found) }
        case .object(let members):
            for key in members.keys.sorted() { try collect(members[key]!, into: &found) }
        default:
            break
        }
    }

    private static func render(_ value: JSONValue, _ context: TemplateContext) throws(TemplateError) -> JSONValue {
        switch value {
        case .string(let text):
            let segments = try TemplateSegment.parse(text)
            if segments.count == 1, case .reference(let reference) = segments[0] {
                return context.resolve(reference) ?? .null
            }
            var rendered = ""
            for segment in segments {
                switch segment {
                case .literal(let literal): rendered += literal
                case .reference(let reference): rendered += context.resolve(reference).map(Self.text) ?? ""
                }
            }
            return .string(rendered)
        case .array(let elements):
            var rendered: [JSONValue] = []
            for element in elements { rendered.append(try render(element, context)) }
            return .array(rendered)
        case .object(let members):
            var rendered: [String: JSONValue] = [:]
            for (key, member) in members { rendered[key] = try render(member, context) }
            return .object(rendered)
        default:
            return value
        }
    }

    private static func text(_ value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        return value.canonicalJSON
    }
}

/// The data placeholders are resolved against.
public struct TemplateContext: Sendable {
    public var input: JSONValue
    public var stepOutputs: [String: JSONValue]
    public var sagaID: String
    public var workflow: String
    public var correlationID: String?

    public init(
        input: JSONValue,
        stepOutputs: [String: JSONValue],
        sagaID: String,
        workflow: String,
        correlationID: String?
    ) {
        self.input = input
        self.stepOutputs = stepOutputs
        self.sagaID = sagaID
        self.workflow = workflow
        self.correlationID = correlationID
    }

    func resolve(_ reference: TemplateReference) -> JSONValue? {
        switch reference {
        case .input(let path): input.value(at: path)
        case .stepOutput(let step, let path): stepOutputs[step]?.value(at: path)
        case .saga(.id): .string(sagaID)
        case .saga(.workflow): .string(workflow)
        case .saga(.correlationID): correlationID.map(JSONValue.string)
        }
    }
}

/// A piece of a template string: literal text or a placeholder.
enum TemplateSegment: Hashable {
    case literal(String)
    case reference(TemplateReference)

    static func parse(_ text: String) throws(TemplateError) -> [TemplateSegment] {
        var segments: [TemplateSegment] = []
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{") {
            if open.lowerBound > rest.startIndex {
                segments.append(.literal(String(rest[..<open.lowerBound])))
            }
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstRange(of: "}}") else {
                throw TemplateError(placeholder: String(afterOpen), reason: "'{{' is never closed with '}}'")
            }
            segments.append(.reference(try TemplateReference(parsing: String(afterOpen[..<close.lowerBound]))))
            rest = afterOpen[close.upperBound...]
        }
        if !rest.isEmpty { segments.append(.literal(String(rest))) }
        return segments
    }
}
