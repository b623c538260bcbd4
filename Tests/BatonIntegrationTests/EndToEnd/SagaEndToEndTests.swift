import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Testing

/// Sagas run by the real engine services through real workers over JetStream.
@Suite("Sagas end to end")
struct SagaEndToEndTests {
    @Test("a saga runs every step to COMPLETED, each step once")
    func happyPath() async throws {
        try await EngineHarness.run { harness in
            harness.on("reserve") { context in ["reservation": .string("r-\(context.command.sagaID.suffix(4))")] }
            let record = try await harness.runSaga()
            #expect(record.saga.status == .completed)
            #expect(record.saga.steps.map(\.status) == [.succeeded, .succeeded, .succeeded])
            #expect(record.saga.steps[0].output?.value(at: ["reservation"]) != nil)
            #expect(["reserve", "charge", "send"].map(harness.callCount) == [1, 1, 1])
            #expect(harness.callCount("release") == 0)
        }
    }

    @Test("a business failure at the pivot compensates exactly the steps that succeeded, with their outputs")
    func compensation() async throws {
        try await EngineHarness.run { harness in
            harness.on("reserve") { _ in ["reservation": "r-77"] }
            harness.on("charge") { _ in throw BusinessFailure(code: "card_declined", message: "declined") }
            let released = Collector<JSONValue>()
            harness.on("release") { context in
                await released.append(contentsOf: [context.payload])
                return .null
            }
            let record = try await harness.runSaga()
            #expect(record.saga.status == .failed)
            #expect(record.saga.steps.map(\.status) == [.compensated, .failed, .pending])
            #expect(await released.values == [["reservation": "r-77"]])
            #expect(harness.callCount("send") == 0)
        }
    }

    @Test("a step that times out is retried, and the late answer to the first attempt is ignored")
    func timeoutThenRetry() async throws {
        try await EngineHarness.run(heartbeats: false) { harness in
            harness.on("reserve") { context in
                // The first attempt answers too late (the step's timeout is 1s).
                if context.command.attempt == 1 { try await Task.sleep(for: .milliseconds(1800)) }
                return ["reservation": .string("r-\(context.command.attempt)")]
            }
            let record = try await harness.runSaga()
            #expect(record.saga.status == .completed)
            #expect(record.saga.steps[0].attempt == 2)
            #expect(record.saga.steps[0].output == ["reservation": "r-2"])
            // The stale reply is recorded as ignored once it arrives.
            try await Task.sleep(for: .milliseconds(1500))
            let history = try await harness.history(record.saga.id)
            #expect(history.contains { $0.kind == .stepTimedOut })
            #expect(history.contains { $0.kind == .ignored && $0.attempt == 1 })
        }
    }
}
