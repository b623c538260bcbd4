/// One problem in a workflow definition: where it is (step and field) and what to fix.
public struct DefinitionIssue: Sendable, Hashable, CustomStringConvertible {
    /// The step the problem is in, or `nil` for a workflow-level field.
    public var step: String?
    /// The field's path inside the step (or the workflow): `retry.max_attempts`, `payload.amount`.
    public var field: String
    public var message: String

    public init(step: String?, field: String, message: String) {
        self.step = step
        self.field = field
        self.message = message
    }

    public var description: String {
        let location = step.map { "step '\($0)': " } ?? ""
        return "\(location)\(field): \(message)"
    }
}

/// A workflow definition that cannot be used, with every problem found.
public struct DefinitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file (or other source) the definition came from, when known.
    public var source: String?
    public var issues: [DefinitionIssue]

    public init(source: String?, issues: [DefinitionIssue]) {
        self.source = source
        self.issues = issues
    }

    /// One line per issue, each starting with the source: `workflows/x.yaml: step 'debit': timeout: …`.
    public var description: String {
        let prefix = source.map { "\($0): " } ?? ""
        return issues.map { prefix + $0.description }.joined(separator: "\n")
    }
}
