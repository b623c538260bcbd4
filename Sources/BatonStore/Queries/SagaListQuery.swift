import BatonCore
import Foundation

/// Filters and paging for listing sagas, newest first. Every filter given must hold.
public struct SagaListQuery: Sendable, Hashable {
    /// Only sagas in one of these statuses (all statuses when empty).
    public var statuses: Set<SagaStatus>
    public var workflow: String?
    /// Created at or after this time.
    public var createdFrom: Date?
    /// Created before this time.
    public var createdBefore: Date?
    /// Only sagas still in flight that are stuck in at least one of these ways (no filter when empty).
    public var stuck: [StuckCondition]
    /// Page size, 1 to ``maximumLimit``.
    public var limit: Int
    /// Continue after the page that returned this cursor.
    public var after: SagaPageCursor?
    /// A saga id, correlation id or idempotency key, or a string value of the input's top level (a
    /// business id such as a `transfer_id`): only sagas that have it.
    public var search: String?

    public static let maximumLimit = 500

    public init(
        statuses: Set<SagaStatus> = [],
        workflow: String? = nil,
        createdFrom: Date? = nil,
        createdBefore: Date? = nil,
        stuck: [StuckCondition] = [],
        limit: Int = 50,
        after: SagaPageCursor? = nil,
        search: String? = nil
    ) {
        self.search = search
        self.statuses = statuses
        self.workflow = workflow
        self.createdFrom = createdFrom
        self.createdBefore = createdBefore
        self.stuck = stuck
        self.limit = limit
        self.after = after
    }
}

/// Ways a saga still in flight can be stuck.
public enum StuckCondition: Sendable, Hashable {
    /// Created longer ago than this and not finished.
    case runningLongerThan(SagaDuration)
    /// More retries than this, over all its steps and both directions.
    case retriedMoreThan(Int)
    /// Has waited for a participant's reply since this time or earlier.
    case awaitingReplySince(Date)
    /// Undoing its steps.
    case compensating
    /// Waiting for an operator.
    case suspended
}

/// A saga as a list shows it: its state without steps.
public struct SagaSummary: Sendable, Hashable {
    public var id: String
    public var workflow: String
    public var workflowVersion: Int
    public var status: SagaStatus
    /// The step being run or compensated (the last one, once finished).
    public var currentStep: String
    public var correlationID: String?
    /// Commands sent, over all steps and both directions.
    public var attempts: Int
    /// Commands sent beyond the first of each step and direction.
    public var retries: Int
    public var lastError: String?
    public var suspensionReason: String?
    /// The accepted cancel, for a saga cancelled on request.
    public var cancellation: SagaCancellation?
    /// When the command now awaiting a reply was sent.
    public var awaitingReplySince: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
}

/// One page of a saga list.
public struct SagaPage: Sendable, Hashable {
    public var sagas: [SagaSummary]
    /// The cursor for the next page, or `nil` when this is the last.
    public var next: SagaPageCursor?
}

/// Where a page of sagas ended: the creation time and id of its last saga. Paging by this key is
/// stable: sagas created meanwhile appear on no page already returned and shift nothing.
public struct SagaPageCursor: Sendable, Hashable {
    var createdAtMicroseconds: Int64
    var id: UUID

    init(createdAtMicroseconds: Int64, id: UUID) {
        self.createdAtMicroseconds = createdAtMicroseconds
        self.id = id
    }

    /// The opaque text form handed to clients.
    public var encoded: String {
        Data("v1:\(createdAtMicroseconds):\(id.sagaID)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Reads a cursor a client sent back.
    /// - Throws: ``SagaStoreError/invalidCursor(_:)`` for text this store did not issue.
    public init(encoded text: String) throws(SagaStoreError) {
        // A cursor this store issues is about 80 characters.
        guard text.utf8.count <= 256 else { throw .invalidCursor("not a cursor returned by a saga list") }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let decoded = String(data: data, encoding: .utf8) else {
            throw .invalidCursor("not a cursor returned by a saga list")
        }
        let parts = decoded.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", let microseconds = Int64(parts[1]), let id = UUID(uuidString: String(parts[2]))
        else {
            throw .invalidCursor("not a cursor returned by a saga list")
        }
        // Only times the database can hold: a forged one would make the query fail.
        guard (Date.earliestStorable.epochMicroseconds...Date.latestStorable.epochMicroseconds).contains(microseconds) else {
            throw .invalidCursor("not a cursor returned by a saga list")
        }
        self.init(createdAtMicroseconds: microseconds, id: id)
    }
}

/// One line of a saga's history with its position.
public struct StoredHistoryEntry: Sendable, Hashable {
    /// 1 for the first entry of a saga, then one more for each.
    public var seq: Int
    public var entry: HistoryEntry
}

/// A child saga, as its parent lists it: which step started it, and how it stands.
public struct ChildSagaSummary: Sendable, Hashable {
    public var id: String
    public var step: String
    public var workflow: String
    public var workflowVersion: Int
    public var status: SagaStatus
}
