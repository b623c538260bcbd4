/// The bounds a workflow definition must keep. Definitions arrive from outside (`POST /v1/workflows`),
/// so each bound is checked before or while the definition is read, and each is refused with a
/// message that names the field and the limit (`docs/operations.md`, Limits).
public struct DefinitionLimits: Sendable, Hashable {
    /// The definition's text, in bytes, checked before it is parsed.
    public var maximumBytes: Int
    /// Steps in one workflow. Every submit, transition and saga read handles all of them; 10,000
    /// steps made a submit take a second and one saga read 2.2 MB.
    public var maximumSteps: Int
    /// Workflow, step, participant and action names, in characters (they become NATS subject
    /// tokens, message ids and database keys).
    public var maximumNameLength: Int
    /// A description, in characters.
    public var maximumDescriptionLength: Int
    /// One payload template (a step's or a compensation's), in bytes of compact JSON.
    public var maximumTemplateBytes: Int
    /// `retry.max_attempts` of a step or a compensation.
    public var maximumAttempts: Int
    /// The definition's version: PostgreSQL keeps it in a 32-bit integer.
    public var maximumVersion: Int

    public init(
        maximumBytes: Int = 256 * 1024,
        maximumSteps: Int = 100,
        maximumNameLength: Int = 64,
        maximumDescriptionLength: Int = 4096,
        maximumTemplateBytes: Int = 16 * 1024,
        maximumAttempts: Int = 1000,
        maximumVersion: Int = Int(Int32.max)
    ) {
        self.maximumBytes = maximumBytes
        self.maximumSteps = maximumSteps
        self.maximumNameLength = maximumNameLength
        self.maximumDescriptionLength = maximumDescriptionLength
        self.maximumTemplateBytes = maximumTemplateBytes
        self.maximumAttempts = maximumAttempts
        self.maximumVersion = maximumVersion
    }

    public static let `default` = DefinitionLimits()
}

extension WorkflowDefinition {
    /// Whether `text` can name a workflow, a step, a participant or an action: 1 to
    /// `limits.maximumNameLength` letters, digits, `-` and `_`, starting with a letter or digit.
    public static func isName(_ text: String, limits: DefinitionLimits = .default) -> Bool {
        text.count <= limits.maximumNameLength && DefinitionReader.isIdentifier(text)
    }

    /// The rule ``isName(_:limits:)`` checks, for messages.
    public static func nameRule(_ limits: DefinitionLimits = .default) -> String {
        "a name holds 1 to \(limits.maximumNameLength) letters, digits, '-' and '_', starting with a letter or digit"
    }
}
