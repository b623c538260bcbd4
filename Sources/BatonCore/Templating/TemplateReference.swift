/// What a `{{…}}` placeholder in a payload names.
public enum TemplateReference: Sendable, Hashable, CustomStringConvertible {
    /// `{{input.amount}}`, `{{input}}`: the saga's input, or a path into it.
    case input(path: [String])
    /// `{{steps.debit.output.entry_id}}`: an earlier step's output, or a path into it.
    case stepOutput(step: String, path: [String])
    /// `{{saga.id}}` and the other saga fields in ``SagaField``.
    case saga(SagaField)

    /// The fields of the running saga a template may name.
    public enum SagaField: String, Sendable, Hashable, CaseIterable {
        case id
        case workflow
        case correlationID = "correlation_id"
    }

    /// Parses the text between `{{` and `}}`.
    /// - Throws: ``TemplateError`` saying what a placeholder may look like.
    public init(parsing expression: String) throws(TemplateError) {
        let text = String(expression.trimmingWhitespace())
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, !parts.contains(where: \.isEmpty) else {
            throw TemplateError(placeholder: expression, reason: "empty name or path part")
        }
        switch parts[0] {
        case "input":
            self = .input(path: Array(parts.dropFirst()))
        case "steps":
            guard parts.count >= 3, parts[2] == "output" else {
                throw TemplateError(
                    placeholder: expression,
                    reason: "a step reference has the form steps.<step>.output[.<field>…]"
                )
            }
            self = .stepOutput(step: parts[1], path: Array(parts.dropFirst(3)))
        case "saga":
            guard parts.count == 2, let field = SagaField(rawValue: parts[1]) else {
                let fields = SagaField.allCases.map { "saga.\($0.rawValue)" }.joined(separator: ", ")
                throw TemplateError(placeholder: expression, reason: "the saga fields are \(fields)")
            }
            self = .saga(field)
        default:
            throw TemplateError(
                placeholder: expression,
                reason: "a placeholder starts with input, steps or saga"
            )
        }
    }

    public var description: String {
        switch self {
        case .input(let path): (["input"] + path).joined(separator: ".")
        case .stepOutput(let step, let path): (["steps", step, "output"] + path).joined(separator: ".")
        case .saga(let field): "saga.\(field.rawValue)"
        }
    }
}

/// A placeholder that cannot be understood.
public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    public var placeholder: String
    public var reason: String
    public var description: String { "bad placeholder {{\(placeholder)}}: \(reason)" }
}
