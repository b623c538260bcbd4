import Foundation

/// A named event from outside that a signal step waits for (`POST /v1/sagas/{id}/signals/{name}`):
/// what it says, and whether a step has consumed it.
///
/// A signal that arrives before its step waits is kept on the saga and consumed when the step
/// does; each signal is consumed once.
public struct SagaSignal: Sendable, Hashable, Codable {
    /// What the signal tells the waiting step.
    public enum Outcome: Sendable, Hashable, Codable {
        /// The step succeeds, with the payload as its output.
        case succeeded(payload: JSONValue)
        /// The step fails as with a participant's `failed` reply.
        case failed(code: String, message: String)
    }

    public var name: String
    /// The sender's idempotency key: the same signal sent again is recognised and not applied twice.
    public var key: String
    public var outcome: Outcome
    /// Who sent it (the API caller), when known.
    public var sentBy: String?
    public var receivedAt: Date
    /// The step that consumed it, once one has.
    public var consumedBy: String?

    public init(name: String, key: String, outcome: Outcome, sentBy: String? = nil, receivedAt: Date, consumedBy: String? = nil) {
        self.name = name
        self.key = key
        self.outcome = outcome
        self.sentBy = sentBy
        self.receivedAt = receivedAt
        self.consumedBy = consumedBy
    }
}
