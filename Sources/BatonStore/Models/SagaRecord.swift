import BatonCore
import Foundation
import PostgresNIO

/// A saga as stored: its state plus what only the store keeps.
public struct SagaRecord: Sendable, Hashable {
    public var saga: SagaInstance
    /// Incremented by every write; a reader can tell whether the saga moved since it last looked.
    public var revision: Int64
    public var idempotencyKey: String?
    /// How many history entries the saga has (the `seq` of the newest one).
    public var historyLength: Int
    /// When the saga reached `COMPLETED` or `FAILED`.
    public var finishedAt: Date?
    /// The commands the write that returned this record queued in the outbox, in order: what the
    /// writer publishes once the write has committed. Empty for a record that was only read.
    public var queued: [OutboxMessage] = []
}

/// Reads a decision may need while its saga's row is locked, made inside the same transaction, so
/// that what is read and what is written are one consistent step (a definition another replica
/// registered a moment ago is found, with no retry).
public struct LockedReads {
    let store: SagaStore
    let connection: PostgresConnection

    /// A registered definition, checked against its content hash; `nil` when there is none.
    public func definition(name: String, version: Int) async throws -> StoredDefinition? {
        try await store.definition(name: name, version: version, on: connection)
    }
}

/// What a caller decided under the saga's row lock: the saga's new state and the transition that
/// produced it (whose effects the store executes in the same transaction).
public struct SagaChange: Sendable {
    public var saga: SagaInstance
    public var transition: SagaTransition

    public init(saga: SagaInstance, transition: SagaTransition) {
        self.saga = saga
        self.transition = transition
    }
}

/// A saga to create, already started: `saga` is the state after the `start` event and
/// `transition` its effects (the first command, the deadline timer), stored together.
public struct NewSaga: Sendable {
    public var saga: SagaInstance
    public var transition: SagaTransition
    public var idempotency: IdempotencyKey?

    public init(saga: SagaInstance, transition: SagaTransition, idempotency: IdempotencyKey? = nil) {
        self.saga = saga
        self.transition = transition
        self.idempotency = idempotency
    }
}

/// A client's idempotency key and the hash of the request it came with: the same key with the same
/// request finds the saga it created; with another request it is a conflict.
public struct IdempotencyKey: Sendable, Hashable {
    public var key: String
    public var requestHash: String

    public init(key: String, requestHash: String) {
        self.key = key
        self.requestHash = requestHash
    }
}

/// The result of ``SagaStore/createSaga(_:now:)``.
public enum SagaCreation: Sendable {
    case created(SagaRecord)
    /// The idempotency key was used before for the same request: the saga it created.
    case existing(SagaRecord)

    public var record: SagaRecord {
        switch self {
        case .created(let record), .existing(let record): record
        }
    }
}

/// The result of ``SagaStore/updateSaga(id:inboxMessageID:now:_:)``.
public enum SagaUpdateResult: Sendable {
    /// The change was committed; `record` is the saga as it now stands.
    case updated(SagaRecord, SagaTransition)
    /// The inbox already holds this message: it was applied before, and nothing was done now.
    case alreadyReceived
}

/// A registered workflow definition.
public struct StoredDefinition: Sendable, Hashable {
    public var definition: WorkflowDefinition
    public var contentHash: String
    /// The text it was registered from (YAML or JSON), when known.
    public var source: String?
    public var registeredAt: Date
    /// Who registered it through the API; `nil` for definitions registered at start-up.
    public var registeredBy: String? = nil
}

/// The result of ``SagaStore/registerDefinition(_:source:now:)``.
public enum DefinitionRegistration: Sendable {
    case registered(StoredDefinition)
    /// The same name, version and content were registered before.
    case alreadyRegistered(StoredDefinition)
    /// The version was registered with other content that no saga had run, and now holds this
    /// content (only when replacing was asked for: `baton dev`).
    case replaced(StoredDefinition)

    public var stored: StoredDefinition {
        switch self {
        case .registered(let stored), .alreadyRegistered(let stored), .replaced(let stored): stored
        }
    }
}
