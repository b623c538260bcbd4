import AsyncHTTPClient
import BatonCore
import Foundation
import NIOCore
import PostgresNIO
import Synchronization

/// Keeps `concurrency` sagas in flight through the HTTP API until `count` have finished: each
/// slot submits a saga, waits for it to finish, and submits the next. One poller asks PostgreSQL
/// every 2 ms which of the sagas in flight have finished, so waiting costs the server nothing.
///
/// Submits go through AsyncHTTPClient over kept-alive connections: the driver shares the two
/// cores with what it measures, and `URLSession` cost it about 1 ms of CPU per saga-step.
struct LoadDriver {
    /// The API's base URL (`http://127.0.0.1:PORT`).
    let api: String
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
                            let id = try await submit(body, correlationID: "\(phase)-\(index)")
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

    /// `POST /v1/sagas`. - Returns: the new saga's id.
    private func submit(_ body: JSONValue, correlationID: String) async throws -> UUID {
        var request = HTTPClientRequest(url: api + "/v1/sagas")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Correlation-ID", value: correlationID)
        request.body = .bytes(ByteBuffer(bytes: JSONWriter.text(of: body).utf8))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let answer = (try? JSONParser.parse(bytes.readableBytesView)) ?? .null
        guard (200..<300).contains(response.status.code), let text = answer.value(at: ["id"])?.stringValue,
            let id = UUID(uuidString: text)
        else {
            throw BenchError("the API answered \(response.status) without a saga id: \(String(buffer: bytes))")
        }
        return id
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
