import BatonClient
import BatonCore
import Foundation
import PostgresNIO
import Synchronization

/// Keeps `concurrency` sagas in flight through the HTTP API until `count` have finished: each
/// slot submits a saga, waits for it to finish, and submits the next. One poller asks PostgreSQL
/// every 2 ms which of the sagas in flight have finished, so waiting costs the server nothing.
struct LoadDriver {
    let api: BatonClient
    let database: PostgresClient
    let workflow: String

    /// Submits and completes `count` sagas tagged `phase` (their correlation ids); every
    /// `failEvery`-th fails at its last step (0: none).
    func run(phase: String, count: Int, concurrency: Int, failEvery: Int) async throws {
        let state = State()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let ids = state.waiting.withLock { Array($0.keys) }
                    if !ids.isEmpty {
                        let rows = try await database.query(
                            "SELECT id FROM baton.sagas WHERE id = ANY(\(ids)) AND finished_at IS NOT NULL")
                        for try await id in rows.decode(UUID.self) {
                            state.waiting.withLock { $0.removeValue(forKey: id) }?.resume()
                        }
                    }
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { slots in
                for _ in 0..<concurrency {
                    slots.addTask {
                        while true {
                            let index = state.next.add(1, ordering: .relaxed).oldValue
                            if index >= count { return }
                            let fail = failEvery > 0 && index % failEvery == 0
                            let body: JSONValue = [
                                "workflow": .string(workflow), "input": ["n": .integer(Int64(index)), "fail": .bool(fail)],
                            ]
                            let response = try await api.request(
                                "POST", "/v1/sagas", body: Data(body.canonicalJSON.utf8), headers: ["X-Correlation-ID": "\(phase)-\(index)"]
                            )
                            guard let text = response.body.value(at: ["id"])?.stringValue, let id = UUID(uuidString: text) else {
                                throw BenchError("the API answered without a saga id: \(response.body)")
                            }
                            await withCheckedContinuation { continuation in
                                state.waiting.withLock { $0[id] = continuation }
                            }
                        }
                    }
                }
                try await slots.waitForAll()
            }
            group.cancelAll()
        }
    }
}

/// What the slots and the poller share.
private final class State: Sendable {
    /// Sagas in flight, by id, with the slot waiting for each.
    let waiting = Mutex<[UUID: CheckedContinuation<Void, Never>]>([:])
    /// The index of the next saga to submit.
    let next = Atomic<Int>(0)
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
