import BatonCore
import BatonStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// Each store test gets a database of its own on the PostgreSQL that `scripts/test` started, with
/// the schema migrated, so that tests which claim "every due timer" or "every outbox row" see only
/// their own.
enum StoreFixture {
    static let logger = Logger(label: "baton.test.store")

    /// A fresh, empty database.
    static func createDatabase() async throws -> DatabaseURL {
        var url = try DatabaseURL(try TestServers.databaseURL)
        let name = "baton_test_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await withClient(url) { admin in
            try await admin.query("CREATE DATABASE \(unescaped: name)")
        }
        url.database = name
        return url
    }

    /// Runs `body` with a running client for `url`, and stops the client after.
    static func withClient<Result: Sendable>(
        _ url: DatabaseURL,
        maximumConnections: Int = 20,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        var configuration = url.clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Runs `body` with a store on a fresh, migrated database.
    static func withStore<Result: Sendable>(_ body: (SagaStore) async throws -> Result) async throws -> Result {
        try await withDatabase { _, store in try await body(store) }
    }

    /// Like ``withStore(_:)``, also giving the database's URL (to connect a second client).
    static func withDatabase<Result: Sendable>(_ body: (DatabaseURL, SagaStore) async throws -> Result) async throws -> Result {
        let url = try await createDatabase()
        return try await withClient(url) { client in
            let store = SagaStore(client: client, logger: logger)
            try await store.migrate()
            _ = try await store.registerDefinition(definition, source: definitionSource, now: epoch)
            return try await body(url, store)
        }
    }

    /// Whole seconds, so that times survive PostgreSQL's microseconds exactly.
    static let epoch = Date(timeIntervalSince1970: 1_800_000_000)

    static let definitionSource = """
        name: store-test
        version: 1
        deadline: 1h
        input:
          required: [amount]
          properties:
            amount: { type: integer }
        steps:
          - name: reserve
            participant: inventory
            action: reserve
            payload: { amount: "{{input.amount}}" }
            timeout: 5s
            retry: { max_attempts: 3, initial: 1s, jitter: 0 }
            compensate:
              action: release
              payload: { reservation: "{{steps.reserve.output.reservation}}" }
          - name: charge
            participant: payments
            action: charge
            payload: { amount: "{{input.amount}}" }
            pivot: true
          - name: notify
            participant: notifications
            action: send
            payload: { amount: "{{input.amount}}" }
        """

    // The source above is fixed and valid; a failure here is a broken fixture, reported by every test.
    static let definition = try! WorkflowDefinition.parse(definitionSource, format: .yaml)

    /// A saga of the test workflow, started at `now` (its first command and deadline timer pending).
    static func startedSaga(
        input: JSONValue = ["amount": 100],
        correlationID: String? = "corr-1",
        idempotency: IdempotencyKey? = nil,
        now: Date = epoch
    ) throws -> NewSaga {
        var system = SystemRandomNumberGenerator()
        let id = SagaID.make(now: now, random: &system)
        var machine = try SagaStateMachine(
            definition: definition,
            saga: SagaInstance(id: id, definition: definition, input: input, correlationID: correlationID, now: now))
        var random = SeededRandomNumberGenerator(seed: 1)
        let transition = machine.handle(.start, now: now, random: &random)
        return NewSaga(saga: machine.saga, transition: transition, idempotency: idempotency)
    }

    /// Hands `event` to the state machine under the saga's row lock and stores the result.
    @discardableResult
    static func handle(
        _ event: SagaEvent,
        sagaID: String,
        in store: SagaStore,
        inboxMessageID: String? = nil,
        now: Date
    ) async throws -> SagaUpdateResult {
        try await store.updateSaga(id: sagaID, inboxMessageID: inboxMessageID, now: now) { record, _ in
            try transition(record, event, now: now)
        }
    }

    /// What the state machine makes of `event` for a stored saga.
    static func transition(_ record: SagaRecord, _ event: SagaEvent, now: Date) throws -> SagaChange {
        var machine = try SagaStateMachine(definition: definition, saga: record.saga)
        var random = SeededRandomNumberGenerator(seed: 1)
        let transition = machine.handle(event, now: now, random: &random)
        return SagaChange(saga: machine.saga, transition: transition)
    }

    /// The reply a participant gives to the saga's current attempt.
    static func reply(_ status: ReplyStatus, to saga: SagaInstance) -> SagaEvent {
        let step = saga.steps[saga.cursor]
        return .reply(
            StepReply(step: step.name, direction: saga.direction, attempt: step.attempt(saga.direction), status: status))
    }

    /// Runs one SQL query and returns the first column of its first row.
    static func scalar<Value: PostgresDecodable & Sendable>(
        _ store: SagaStore, _ query: PostgresQuery, as type: Value.Type
    ) async throws
        -> Value?
    {
        for try await value in try await store.client.query(query).decode(Value.self) { return value }
        return nil
    }
}

/// Collects values from concurrent tasks.
actor Collector<Value: Sendable> {
    private(set) var values: [Value] = []
    func append(contentsOf more: [Value]) { values.append(contentsOf: more) }
}

extension SagaUpdateResult {
    var record: SagaRecord? {
        if case .updated(let record, _) = self { return record }
        return nil
    }

    var transition: SagaTransition? {
        if case .updated(_, let transition) = self { return transition }
        return nil
    }
}
