import BatonCore
import BatonStore
import Foundation
import Logging
import Synchronization

/// The engine's kernel: every event a saga takes passes through it, the same way each time.
///
/// A submission, a cancel, an operator's action, a participant's reply, a due timer: the runner
/// asks the store to lock the saga (or a batch of distinct sagas) and, under the lock, resolves the
/// saga's definition (from its cache, or read in the same transaction when it is not there yet),
/// runs the pure state machine, and hands the resulting change back to the store, which writes it
/// with one statement and commits. After the commit, and only then, it does what the change
/// caused outside the database: hands the commands it queued to the ``CommandDispatcher`` to
/// publish, counts it (``EngineMetrics``) and logs it (``TransitionLog``). The store never calls
/// back: it only reads and writes what it is given.
///
/// An event the state machine cannot apply at all (the saga as stored no longer matches its
/// definition) parks the saga SUSPENDED in the same transaction (``UnappliableEvent``), instead of
/// failing again on every redelivery or timer lease.
public final class SagaRunner: Sendable {
    let store: SagaStore
    /// Publishes what each commit queued; without one, outbox relays do (woken by `NOTIFY`).
    let dispatcher: CommandDispatcher?
    /// Where every committed transition is counted.
    public let metrics: EngineMetrics
    /// Where every committed transition is logged.
    let log: TransitionLog
    /// Workflow definitions by name and version. A version's content never changes once a saga ran
    /// it, so the cache needs no invalidation, only filling; a version no saga ran may be replaced
    /// (`baton dev`), and ``forgetDefinition(name:version:)`` drops it.
    private let definitions = Mutex<[String: CachedDefinition]>([:])

    /// - Parameters:
    ///   - store: Where sagas live. With a `dispatcher`, make it with `wakesOutboxRelays: false`:
    ///     the dispatcher publishes new commands, and relays only sweep up what it missed.
    ///   - dispatcher: Publishes the commands each commit queued, right after it.
    public init(
        store: SagaStore, dispatcher: CommandDispatcher? = nil, metrics: EngineMetrics = EngineMetrics(),
        logger: Logger = Logger(label: "baton.saga")
    ) {
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.log = TransitionLog(logger: logger)
    }

    // MARK: - Definitions

    private static func key(_ name: String, _ version: Int) -> String { "\(name)@\(version)" }

    /// The cached definition, if any.
    public func cached(name: String, version: Int) -> WorkflowDefinition? {
        definitions.withLock { $0[Self.key(name, version)]?.definition }
    }

    /// The definition, from the cache or the store.
    /// - Throws: ``SagaStoreError/definitionNotFound(name:version:)``.
    @discardableResult
    public func definition(name: String, version: Int) async throws -> WorkflowDefinition {
        try await entry(name: name, version: version).definition
    }

    /// The definition with its content hash, from the cache or the store (which checks the hash
    /// when it reads it: a cached entry never needs the check again).
    /// - Throws: ``SagaStoreError/definitionNotFound(name:version:)``.
    func entry(name: String, version: Int) async throws -> CachedDefinition {
        if let cached = definitions.withLock({ $0[Self.key(name, version)] }) { return cached }
        return try remember(await store.definition(name: name, version: version), name: name, version: version)
    }

    /// Drops a cached definition whose version was replaced (`baton dev`).
    public func forgetDefinition(name: String, version: Int) {
        _ = definitions.withLock { $0.removeValue(forKey: Self.key(name, version)) }
    }

    /// The definition a locked saga runs: from the cache, or read in the saga's transaction.
    /// - Throws: ``UnappliableEvent`` when the version no longer holds the content the saga pinned
    ///   (replaced in `baton dev` as the saga started).
    private func definition(of saga: SagaInstance, reading reads: LockedReads) async throws -> WorkflowDefinition {
        let key = Self.key(saga.workflow, saga.workflowVersion)
        if let cached = definitions.withLock({ $0[key] }), cached.contentHash == saga.workflowHash { return cached.definition }
        let stored = try await reads.definition(name: saga.workflow, version: saga.workflowVersion)
        let entry = try remember(stored, name: saga.workflow, version: saga.workflowVersion)
        guard entry.contentHash == saga.workflowHash else {
            throw UnappliableEvent(
                reason:
                    "workflow \(saga.workflow) v\(saga.workflowVersion) was replaced after this saga pinned it (hash \(saga.workflowHash.prefix(12)), now \(entry.contentHash.prefix(12)))"
            )
        }
        return entry.definition
    }

    private func remember(_ stored: StoredDefinition?, name: String, version: Int) throws -> CachedDefinition {
        guard let stored else { throw SagaStoreError.definitionNotFound(name: name, version: version) }
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

    // MARK: - One event

    /// Applies `event` to saga `id` in one transaction, then does what it caused.
    /// - Parameters:
    ///   - inboxMessageID: The id of the message that carried the event, recorded with the change;
    ///     a message the inbox holds already changes nothing (``SagaUpdateResult/alreadyReceived``).
    ///   - actor: Who asked for it (an API caller), named in every history entry it adds.
    ///   - check: Runs first, with the saga's definition; what it throws aborts the event.
    func apply(
        _ event: SagaEvent,
        to id: String,
        inboxMessageID: String? = nil,
        actor: String? = nil,
        check: EventCheck? = nil
    ) async throws -> SagaUpdateResult {
        let now = Date.now
        let parked = Parkings()
        let result = try await store.updateSaga(id: id, inboxMessageID: inboxMessageID, now: now) { record, reads in
            try await decide(event, for: record, reading: reads, now: now, actor: actor, check: check, parked: { parked.note(0, $0) })
        }
        if case .updated(let record, let transition) = result {
            committed(transition, of: record, event: event, parked: parked[0], since: now)
        }
        return result
    }

    /// The change `event` makes to a locked saga: the state machine's transition, or, when the
    /// machine cannot run over the saga as stored, the saga parked (and `parked` told why).
    func decide(
        _ event: SagaEvent,
        for record: SagaRecord,
        reading reads: LockedReads,
        now: Date,
        actor: String? = nil,
        check: EventCheck? = nil,
        parked: (UnappliableEvent) -> Void = { _ in }
    ) async throws -> SagaChange {
        var machine: SagaStateMachine
        do {
            let definition = try await definition(of: record.saga, reading: reads)
            try check?(definition)
            machine = try SagaStateMachine(definition: definition, saga: record.saga)
        } catch let error as UnappliableEvent {
            parked(error)
            var saga = record.saga
            let transition = saga.park(because: error.reason, event: event.summary, now: now)
            return SagaChange(saga: saga, transition: transition)
        } catch let error as DefinitionMismatchError {
            let poison = UnappliableEvent(reason: error.description)
            parked(poison)
            var saga = record.saga
            let transition = saga.park(because: poison.reason, event: event.summary, now: now)
            return SagaChange(saga: saga, transition: transition)
        }
        var random = SystemRandomNumberGenerator()
        let transition = machine.handle(event, now: now, random: &random).attributed(to: actor)
        return SagaChange(saga: machine.saga, transition: transition)
    }

    /// What a committed transition causes outside the database: its commands handed to the
    /// dispatcher, its counts and its log lines (an error line when it parked the saga).
    /// - Parameter start: When the transaction began: the start of the transition's span.
    func committed(
        _ transition: SagaTransition, of record: SagaRecord, event: SagaEvent, parked: UnappliableEvent? = nil, since start: Date
    ) {
        if !record.queued.isEmpty { dispatcher?.commandsQueued(record.queued) }
        EngineTracing.transition(transition, of: record.saga, event: event, since: start)
        if let parked {
            metrics.sagaParked(workflow: record.saga.workflow)
            log.logger.error(
                "saga parked: an event cannot be applied to it",
                metadata: [
                    "saga.id": "\(record.saga.id)", "saga.workflow": "\(record.saga.workflow)", "event": "\(event.summary)",
                    "reason": "\(parked.reason)",
                ])
        }
        metrics.record(transition, of: record.saga)
        log.record(transition, of: record.saga)
        let children = Self.childWork(of: transition, saga: record.saga)
        // Each piece is its own transaction through the kernel; none may wait inside this one's
        // caller (a batch, a reply consumer), so they run on their own.
        if !children.isEmpty { Task { await perform(children) } }
    }
}

/// A definition as the runner keeps it: with its content hash, computed (and checked) once.
struct CachedDefinition: Sendable {
    var definition: WorkflowDefinition
    var contentHash: String
}

/// An event that can never be applied to its saga: the state machine cannot run over the saga as
/// stored (its definition does not match its steps). Retrying changes nothing, so the runner parks
/// the saga SUSPENDED instead (``BatonCore/SagaInstance/park(because:event:now:)``): a person has
/// to look.
public struct UnappliableEvent: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// The events of one transaction that parked their saga, by their place in it: noted while the
/// saga is locked, acted on (counted, logged) after the commit.
final class Parkings: Sendable {
    private let parked = Mutex<[Int: UnappliableEvent]>([:])

    func note(_ index: Int, _ poison: UnappliableEvent) { parked.withLock { $0[index] = poison } }

    subscript(index: Int) -> UnappliableEvent? { parked.withLock { $0[index] } }
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
