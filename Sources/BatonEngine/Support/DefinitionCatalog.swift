import BatonCore
import BatonStore
import Foundation
import Logging
import Synchronization

/// The workflow definitions sagas run, by name and version, kept in memory: a definition never
/// changes once registered, so the cache needs no invalidation, only filling.
///
/// Lookups are synchronous so that they can happen under a saga's row lock; a miss is filled from
/// the store by ``load(name:version:)`` outside it.
public final class DefinitionCatalog: Sendable {
    private let definitions = Mutex<[String: CachedDefinition]>([:])
    let store: SagaStore
    /// Where every transition applied through the catalog is counted.
    public let metrics: EngineMetrics
    /// Where every transition applied through the catalog is logged.
    let log: TransitionLog

    public init(store: SagaStore, metrics: EngineMetrics = EngineMetrics(), logger: Logger = Logger(label: "baton.saga")) {
        self.store = store
        self.metrics = metrics
        self.log = TransitionLog(logger: logger)
    }

    /// Counts and logs a committed transition.
    func record(_ transition: SagaTransition, of saga: SagaInstance) {
        metrics.record(transition, of: saga)
        log.record(transition, of: saga)
    }

    private static func key(_ name: String, _ version: Int) -> String { "\(name)@\(version)" }

    /// The cached definition, if any.
    public func cached(name: String, version: Int) -> WorkflowDefinition? {
        definitions.withLock { $0[Self.key(name, version)]?.definition }
    }

    /// The definition, from the cache or the store.
    /// - Throws: ``SagaStoreError/definitionNotFound(name:version:)``.
    @discardableResult
    public func load(name: String, version: Int) async throws -> WorkflowDefinition {
        try await entry(name: name, version: version).definition
    }

    /// The definition with its content hash, from the cache or the store (which checks the hash
    /// when it reads it: a cached entry never needs the check again).
    /// - Throws: ``SagaStoreError/definitionNotFound(name:version:)``.
    func entry(name: String, version: Int) async throws -> CachedDefinition {
        if let cached = definitions.withLock({ $0[Self.key(name, version)] }) { return cached }
        guard let stored = try await store.definition(name: name, version: version) else {
            throw SagaStoreError.definitionNotFound(name: name, version: version)
        }
        let entry = CachedDefinition(definition: stored.definition, contentHash: stored.contentHash)
        definitions.withLock { $0[Self.key(name, version)] = entry }
        return entry
    }

    /// The newest version of a workflow, or `nil` when none is registered. Which version is newest
    /// can change at any time (any replica may register one), so the store is asked each time, by
    /// an index-only look-up; the definition itself comes from the cache.
    func latest(name: String) async throws -> CachedDefinition? {
        guard let version = try await store.latestDefinitionVersion(name: name) else { return nil }
        return try await entry(name: name, version: version)
    }
}

/// A definition as the catalog keeps it: with its content hash, computed (and checked) once.
struct CachedDefinition: Sendable {
    var definition: WorkflowDefinition
    var contentHash: String
}

/// An event that can never be applied to its saga: the state machine cannot run over the saga as
/// stored (its definition does not match its steps). Retrying changes nothing, so the saga is
/// parked (``DefinitionCatalog/park(_:event:because:inboxMessageID:)``) instead of failing again on
/// every redelivery or timer lease.
public struct UnappliableEvent: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// A check of an event against the saga's definition, made under the saga's row lock before the
/// state machine runs (a reply's subject against the step it names).
typealias EventCheck = @Sendable (WorkflowDefinition) throws -> Void

/// A reply published on a subject that is not its step's: `baton.reply.<participant>.<action>`
/// must name the participant and action of the step and direction its headers name. NATS
/// permissions let each participant publish only under its own name, so a mismatch is a
/// participant answering for another one's step: refused, to the dead letters.
struct MisaddressedReply: Error, CustomStringConvertible {
    var description: String
}

/// A saga's definition was not in the catalog when its row was locked (another replica registered
/// it since this one started): load it, then try again.
struct DefinitionNotCached: Error {
    var name: String
    var version: Int
}

extension DefinitionCatalog {
    /// Hands `event` to the state machine for a stored saga (under its row lock).
    /// - Parameter actor: Who asked for it (an API caller), named in every history entry it adds.
    /// - Parameter check: Runs first, with the saga's definition; what it throws aborts the event.
    func transition(
        _ record: SagaRecord, _ event: SagaEvent, now: Date, actor: String? = nil, check: EventCheck? = nil
    ) throws -> SagaChange {
        let saga = record.saga
        guard let definition = cached(name: saga.workflow, version: saga.workflowVersion) else {
            throw DefinitionNotCached(name: saga.workflow, version: saga.workflowVersion)
        }
        try check?(definition)
        var machine: SagaStateMachine
        do {
            machine = try SagaStateMachine(definition: definition, saga: saga)
        } catch {
            throw UnappliableEvent(reason: error.description)
        }
        var random = SystemRandomNumberGenerator()
        let transition = machine.handle(event, now: now, random: &random).attributed(to: actor)
        return SagaChange(saga: machine.saga, transition: transition)
    }

    /// Applies `event` to saga `id`, loading its definition first if it was not cached. An event
    /// that can never be applied parks the saga (``park(_:event:because:inboxMessageID:)``).
    func apply(
        _ event: SagaEvent,
        to id: String,
        inboxMessageID: String? = nil,
        actor: String? = nil,
        check: EventCheck? = nil
    ) async throws -> SagaUpdateResult {
        do {
            return try await applyOrThrow(event, to: id, inboxMessageID: inboxMessageID, actor: actor, check: check)
        } catch let poison as UnappliableEvent {
            return try await park(id, event: event, because: poison, inboxMessageID: inboxMessageID)
        }
    }

    /// Parks saga `id` SUSPENDED because `event` cannot be applied to it
    /// (``BatonCore/SagaInstance/park(because:event:now:)``), recording the reason, counting it and
    /// logging it as an error: a person has to look.
    func park(
        _ id: String, event: SagaEvent, because poison: UnappliableEvent, inboxMessageID: String? = nil
    ) async throws -> SagaUpdateResult {
        let result = try await store.updateSaga(id: id, inboxMessageID: inboxMessageID, now: .now) { record in
            parking(record, event: event, because: poison, now: .now)
        }
        if case .updated(let record, let transition) = result { recordParking(transition, of: record.saga, event: event, because: poison) }
        return result
    }

    /// The change that parks a stored saga.
    func parking(_ record: SagaRecord, event: SagaEvent, because poison: UnappliableEvent, now: Date) -> SagaChange {
        var saga = record.saga
        let transition = saga.park(because: poison.reason, event: event.summary, now: now)
        return SagaChange(saga: saga, transition: transition)
    }

    /// Counts and logs a committed parking.
    func recordParking(_ transition: SagaTransition, of saga: SagaInstance, event: SagaEvent, because poison: UnappliableEvent) {
        metrics.sagaParked(workflow: saga.workflow)
        log.logger.error(
            "saga parked: an event cannot be applied to it",
            metadata: [
                "saga.id": "\(saga.id)", "saga.workflow": "\(saga.workflow)", "event": "\(event.summary)", "reason": "\(poison.reason)",
            ])
        record(transition, of: saga)
    }

    private func applyOrThrow(
        _ event: SagaEvent,
        to id: String,
        inboxMessageID: String?,
        actor: String?,
        check: EventCheck?
    ) async throws -> SagaUpdateResult {
        let result: SagaUpdateResult
        do {
            result = try await store.updateSaga(id: id, inboxMessageID: inboxMessageID, now: .now) { record in
                try transition(record, event, now: .now, actor: actor, check: check)
            }
        } catch let missing as DefinitionNotCached {
            try await load(name: missing.name, version: missing.version)
            result = try await store.updateSaga(id: id, inboxMessageID: inboxMessageID, now: .now) { record in
                try transition(record, event, now: .now, actor: actor, check: check)
            }
        }
        if case .updated(let updated, let transition) = result { record(transition, of: updated.saga) }
        return result
    }
}
