import PostgresNIO

/// Why the store refused a request. Database and connection failures are not wrapped: they arrive
/// as PostgresNIO's own errors, and callers treat them as transient.
public enum SagaStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case sagaNotFound(id: String)
    /// Saga ids are lowercase UUIDs (``SagaID``).
    case invalidSagaID(String)
    /// The idempotency key was used before, for a different request.
    case idempotencyConflict(key: String, existingSagaID: String)
    /// A definition with this name and version is registered with other content.
    case definitionConflict(name: String, version: Int, registeredHash: String, newHash: String)
    case definitionNotFound(name: String, version: Int)
    /// A version was to be replaced (``SagaStore/registerDefinition(_:source:now:registeredBy:replacingUnused:)``)
    /// but sagas have run it: they pin its content.
    case definitionInUse(name: String, version: Int)
    /// A paging cursor that this store did not issue.
    case invalidCursor(String)
    /// PostgreSQL cannot store a value (a `\u0000` in a string, for one): the change is refused as a
    /// whole and nothing is written.
    case unstorableValue(String)
    /// A stored row that cannot be read back (it was edited by hand, or written by a newer build).
    case corruptRow(String)

    public var description: String {
        switch self {
        case .sagaNotFound(let id): "no saga with id '\(id)'"
        case .invalidSagaID(let id): "'\(id)' is not a saga id: saga ids are lowercase UUIDs"
        case .idempotencyConflict(let key, let existing):
            "idempotency key '\(key)' was already used for a different request (saga \(existing)); "
                + "reuse a key only to retry the identical request"
        case .definitionConflict(let name, let version, let registered, let new):
            "workflow \(name) version \(version) is already registered with different content "
                + "(hash \(registered.prefix(12)), this one \(new.prefix(12))): register it as a new version"
        case .definitionInUse(let name, let version):
            "workflow \(name) version \(version) has been run by sagas, which keep to its content: "
                + "register the change as version \(version + 1)"
        case .definitionNotFound(let name, let version): "no workflow \(name) version \(version) is registered"
        case .invalidCursor(let reason): "invalid paging cursor: \(reason)"
        case .unstorableValue(let reason): "the change cannot be stored: \(reason)"
        case .corruptRow(let reason): "a stored row cannot be read: \(reason)"
        }
    }

    /// Turns what a store call threw into the error callers should see: values PostgreSQL cannot
    /// hold are named as such; everything else passes through.
    static func translating(_ error: any Error) -> any Error {
        if let psql = error as? PSQLError, let code = psql.serverInfo?[.sqlState],
            unstorableSQLStates.contains(code)
        {
            return SagaStoreError.unstorableValue(psql.serverInfo?[.message] ?? code)
        }
        return error
    }

    /// untranslatable_character, character_not_in_repertoire, invalid_text_representation (for
    /// example `\u0000` in jsonb), string_data_right_truncation, numeric_value_out_of_range.
    static let unstorableSQLStates: Set<String> = ["22P05", "22021", "22P02", "22001", "22003"]
}
