import BatonCore
import BatonStore
import Crypto
import Foundation
import Tracing

/// What people (through the API or the CLI) can ask of sagas: start one, cancel one, act on a
/// suspended one. Each is one transaction through the kernel.
extension SagaRunner {
    /// A submission refused before anything was stored.
    public enum SubmissionError: Error, Sendable, Equatable, CustomStringConvertible {
        case unknownWorkflow(String)
        case unknownVersion(workflow: String, version: Int)
        /// The input does not match the workflow's input schema: every problem found.
        case invalidInput([String])

        public var description: String {
            switch self {
            case .unknownWorkflow(let name): "no workflow named '\(name)' is registered"
            case .unknownVersion(let name, let version): "workflow '\(name)' has no version \(version)"
            case .invalidInput(let problems): "the input does not match the workflow's input schema: " + problems.joined(separator: "; ")
            }
        }
    }

    /// Starts a saga of `workflow` (its newest version unless `version` is given).
    ///
    /// - Parameters:
    ///   - parent: For a child saga, the saga and step that start it.
    ///   - start: Whether to start it; a saga not started stays `PENDING` (a child's parent makes
    ///     one only to cancel it at once).
    ///
    /// With an idempotency key, the same request again returns the saga the first one created;
    /// another request with the key throws ``SagaStoreError/idempotencyConflict(key:existingSagaID:)``.
    public func submit(
        workflow: String,
        version: Int? = nil,
        input: JSONValue,
        idempotencyKey: String? = nil,
        correlationID: String? = nil,
        traceparent: String? = nil,
        actor: String? = nil,
        parent: SagaParent? = nil,
        start: Bool = true
    ) async throws -> SagaCreation {
        // The submission's span, in the caller's trace; with a tracer bootstrapped the saga carries
        // this span's context, so that every later span of the saga is its descendant.
        try await withSpan("saga.submit", context: EngineTracing.context(of: traceparent), ofKind: .server) { span in
            span.attributes["baton.workflow"] = workflow
            let creation = try await create(
                workflow: workflow, version: version, input: input, idempotencyKey: idempotencyKey, correlationID: correlationID,
                traceparent: EngineTracing.traceparent(of: span.context) ?? traceparent, actor: actor, parent: parent, start: start)
            span.attributes["baton.saga.id"] = creation.record.saga.id
            if case .existing = creation { span.attributes["baton.idempotent_replay"] = true }
            return creation
        }
    }

    private func create(
        workflow: String, version: Int?, input: JSONValue, idempotencyKey: String?, correlationID: String?, traceparent: String?,
        actor: String?, parent: SagaParent?, start: Bool
    ) async throws -> SagaCreation {
        let stored: CachedDefinition
        if let version {
            do {
                stored = try await entry(name: workflow, version: version)
            } catch SagaStoreError.definitionNotFound {
                if try await store.latestDefinitionVersion(name: workflow) == nil { throw SubmissionError.unknownWorkflow(workflow) }
                throw SubmissionError.unknownVersion(workflow: workflow, version: version)
            }
        } else {
            guard let latest = try await latest(name: workflow) else { throw SubmissionError.unknownWorkflow(workflow) }
            stored = latest
        }
        let definition = stored.definition
        let problems = definition.input?.violations(of: input) ?? []
        guard problems.isEmpty else { throw SubmissionError.invalidInput(problems) }

        let now = Date.now
        var random = SystemRandomNumberGenerator()
        let id = SagaID.make(now: now, random: &random)
        var machine = try SagaStateMachine(
            definition: definition,
            saga: SagaInstance(
                id: id, definition: definition, workflowHash: stored.contentHash, input: input, correlationID: correlationID,
                traceparent: traceparent, parent: parent, now: now))
        let transition =
            start ? machine.handle(.start, now: now, random: &random).attributed(to: actor) : SagaTransition(outcome: .applied, effects: [])
        let idempotency = idempotencyKey.map {
            IdempotencyKey(key: $0, requestHash: Self.requestHash(workflow: workflow, version: version, input: input))
        }
        let creation = try await store.createSaga(NewSaga(saga: machine.saga, transition: transition, idempotency: idempotency), now: now)
        if case .created(let record) = creation { committed(transition, of: record, event: .start, since: now) }
        return creation
    }

    /// The hash an idempotency key is bound to: the request as the client sent it (the version
    /// it asked for, not the one it got), in canonical JSON.
    static func requestHash(workflow: String, version: Int?, input: JSONValue) -> String {
        let request: JSONValue = [
            "workflow": .string(workflow), "version": version.map { .integer(Int64($0)) } ?? .null, "input": input,
        ]
        return SHA256.hash(data: Data(request.canonicalJSON.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Asks saga `id` to stop and undo what it did.
    /// - Returns: The saga after the request, and the outcome (`rejected` with the reason when it is
    ///   past its pivot or finished).
    /// - Parameter actor: Who asked (the API caller), named in the history entries it adds.
    public func cancel(id: String, reason: String, actor: String? = nil) async throws -> (SagaRecord, SagaTransition.Outcome) {
        try await request(.cancel(reason: reason, requestedBy: actor), id: id, actor: actor)
    }

    /// Delivers a signal to saga `id`, for the signal step of its name: consumed at once when that
    /// step waits, kept until it does otherwise.
    /// - Returns: The saga after the request, and the outcome: `ignored(.duplicate)` for a signal
    ///   already received under the same key, `rejected` with the reason when the saga cannot take it.
    /// - Parameter actor: Who sent it (the API caller), named in the history entries it adds.
    public func signal(id: String, _ signal: SagaSignal, actor: String? = nil) async throws -> (SagaRecord, SagaTransition.Outcome) {
        var signal = signal
        signal.sentBy = actor
        return try await request(.signal(signal), id: id, actor: actor)
    }

    /// An operator's action on a suspended saga.
    /// - Parameter actor: Who acted (the API caller), named in the history entries it adds.
    public func act(on id: String, _ action: OperatorAction, actor: String? = nil) async throws -> (SagaRecord, SagaTransition.Outcome) {
        try await request(.operatorAction(action), id: id, actor: actor)
    }

    /// The kernel reads the saga's definition in the transaction if it has not cached it yet: no
    /// read beforehand.
    private func request(_ event: SagaEvent, id: String, actor: String?) async throws -> (SagaRecord, SagaTransition.Outcome) {
        guard case .updated(let record, let transition) = try await apply(event, to: id, actor: actor) else {
            throw SagaStoreError.sagaNotFound(id: id)
        }
        return (record, transition.outcome)
    }
}
