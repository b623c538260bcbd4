import BatonStore
import Foundation
import Logging

/// The console's live updates: which sagas changed, for every open page, from one look at the
/// database per second whatever the number of pages watching (and none while no page watches).
///
/// A look reads the revision of every saga in flight (the small `sagas_active` index) and of the
/// sagas pages watch by id (a finished saga's page), and compares them with the previous look: a new
/// saga, a changed revision, or a saga that left the in-flight set is a change. Several replicas
/// each run their own feed over the same database, so a page sees changes whichever replica made
/// them.
actor ConsoleFeed {
    /// A change, as the page is told of it.
    struct Change: Sendable, Hashable {
        var id: String
        var status: String
        var revision: Int64
    }

    struct Subscriber {
        /// `nil`: every saga (the overview and the list).
        var saga: String?
        var continuation: AsyncStream<[Change]>.Continuation
    }

    let store: SagaStore
    let interval: Duration
    let logger: Logger
    /// The most sagas in flight one look reads; past it, pages watching every saga see only the
    /// oldest this many (a page watching one saga always sees it).
    let activeLimit = 5000
    private var subscribers: [UUID: Subscriber] = [:]
    private var known: [String: SagaRevision] = [:]
    private var looking: Task<Void, Never>?

    init(store: SagaStore, interval: Duration = .seconds(1), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    /// The most pages one server keeps a stream open for: each holds a connection and a little
    /// memory, and a client opening streams in a loop must not exhaust them.
    static let maximumSubscribers = 1000

    var subscriberCount: Int { subscribers.count }

    /// The changes a page watching `saga` (or every saga, when `nil`) is told of, until it goes;
    /// `nil` when ``maximumSubscribers`` pages already watch.
    func subscribe(saga: String?) -> AsyncStream<[Change]>? {
        guard subscribers.count < Self.maximumSubscribers else { return nil }
        let (stream, continuation) = AsyncStream.makeStream(of: [Change].self, bufferingPolicy: .bufferingNewest(16))
        let id = UUID()
        subscribers[id] = Subscriber(saga: saga, continuation: continuation)
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        if looking == nil {
            known = [:]
            looking = Task { await self.lookWhileWatched() }
        }
        return stream
    }

    private func unsubscribe(_ id: UUID) {
        subscribers[id] = nil
    }

    private func lookWhileWatched() async {
        var first = true
        while !subscribers.isEmpty && !Task.isCancelled {
            do {
                let changes = try await look()
                // The first look only learns where things stand: every saga would count as new.
                if !first && !changes.isEmpty { publish(changes) }
                first = false
            } catch {
                logger.warning("the console's change feed cannot read the sagas", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
        looking = nil
    }

    private func look() async throws -> [Change] {
        let watched = Set(subscribers.values.compactMap(\.saga)).union(known.keys)
        let now = try await store.revisions(ofActiveUpTo: activeLimit, and: watched)
        var seen: [String: SagaRevision] = [:]
        var changes: [Change] = []
        for revision in now {
            seen[revision.id] = revision
            if known[revision.id]?.revision != revision.revision {
                changes.append(Change(id: revision.id, status: revision.status.rawValue, revision: revision.revision))
            }
        }
        // Remember only what is in flight or watched: a finished saga nobody watches is dropped.
        let watchedNow = Set(subscribers.values.compactMap(\.saga))
        known = seen.filter { !$0.value.status.isTerminal || watchedNow.contains($0.key) }
        return changes
    }

    private func publish(_ changes: [Change]) {
        for subscriber in subscribers.values {
            if let saga = subscriber.saga {
                let mine = changes.filter { $0.id == saga }
                if !mine.isEmpty { subscriber.continuation.yield(mine) }
            } else {
                subscriber.continuation.yield(changes)
            }
        }
    }
}
