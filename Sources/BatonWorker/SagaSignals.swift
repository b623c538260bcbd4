import BatonClient
import BatonCore
import Foundation

/// Sends sagas signals (`POST /v1/sagas/{id}/signals/{name}`, scope `sagas:signal`): how a service
/// tells a saga that something happened outside it, such as a payment provider's callback. The
/// saga's step that waits for the signal succeeds with the payload, or fails (docs/workflows.md,
/// Signals).
///
/// Signals go over Baton's HTTP API, not NATS: the API checks the caller's credential and scope,
/// and answers at once whether the saga took the signal.
public struct SagaSignals: Sendable {
    /// What became of a signal.
    public enum Delivery: Sendable, Hashable {
        /// The saga took it: its step consumed it, or keeps it until the step waits.
        case received
        /// The saga had it already, under the same key: nothing changed.
        case alreadyReceived
        /// The saga cannot take it, for this reason (no step waits for it, its step is done, or the
        /// saga is compensating or finished). Sending it again will not change that.
        case refused(String)
    }

    public let client: BatonClient

    public init(client: BatonClient) { self.client = client }

    /// Sends signal `name` to `saga`: its waiting step succeeds with `payload` as its output.
    /// - Parameter key: Names the signal: send it again with the same key after a failure, and the
    ///   saga takes it once.
    /// - Throws: ``BatonClient/Unreachable`` or ``BatonClient/Failure`` (other than a refusal) when
    ///   the signal may not have arrived: send it again.
    public func send(_ name: String, to saga: String, payload: JSONValue, key: String) async throws -> Delivery {
        try await post(name, to: saga, body: ["payload": payload], key: key)
    }

    /// Sends signal `name` to `saga` as a failure: its waiting step fails with `code` and `message`,
    /// as with a participant's `failed` reply.
    public func fail(_ name: String, to saga: String, code: String, message: String, key: String) async throws -> Delivery {
        try await post(name, to: saga, body: ["failed": ["code": .string(code), "message": .string(message)]], key: key)
    }

    private func post(_ name: String, to saga: String, body: JSONValue, key: String) async throws -> Delivery {
        do {
            let response = try await client.request(
                "POST", "/v1/sagas/\(saga)/signals/\(name)", body: Data(body.canonicalJSON.utf8), headers: ["Idempotency-Key": key])
            return response.status == 200 ? .alreadyReceived : .received
        } catch let failure as BatonClient.Failure where failure.status == 409 {
            return .refused(failure.detail)
        }
    }
}
