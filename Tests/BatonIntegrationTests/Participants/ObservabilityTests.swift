import BatonCore
import Foundation
import Logging
import Testing

@testable import BatonEngine

extension EndToEndSuites {
    /// The correlation id and the W3C trace context travel from the HTTP request through every
    /// command and reply into the logs of the orchestrator and of the workers; saga log levels
    /// follow what an operator should do about each line.
    @Suite("Observability", .serialized)
    struct ObservabilityTests {
        static let traceID = "0af7651916cd43dd8448eb211c80319c"
        static let traceparent = "00-\(traceID)-b7ad6b7169203331-01"

        static func transfer(_ id: String, from: String, to: String, amount: Int64) -> JSONValue {
            [
                "workflow": "funds-transfer",
                "input": [
                    "transfer_id": .string(id), "from_account": .string(from), "to_account": .string(to), "amount": .integer(amount),
                    "currency": "EUR",
                ],
            ]
        }

        @Test("X-Correlation-ID and traceparent reach the saga, every command and reply, and the worker and engine logs")
        func headersPropagate() async throws {
            try await FintechHarness.run { system in
                try await system.ledger.openAccount("o-a", currency: "EUR", balance: 10_000)
                try await system.ledger.openAccount("o-b", currency: "EUR", balance: 0)
                let response = try await system.baton.request(
                    "POST", "/v1/sagas", body: Data(Self.transfer("o-1", from: "o-a", to: "o-b", amount: 700).canonicalJSON.utf8),
                    headers: ["X-Correlation-ID": "corr-obs-1", "traceparent": Self.traceparent])
                #expect(response.headers["X-Correlation-ID"] ?? response.headers["x-correlation-id"] == "corr-obs-1")
                guard let id = response.body.objectValue?["id"]?.stringValue else {
                    Issue.record("no saga id in \(response.body)")
                    return
                }
                #expect(try await system.settled(id).saga.status == .completed)
                let saga = try await system.baton.get("/v1/sagas/\(id)")
                #expect(saga.objectValue?["traceparent"] == .string(Self.traceparent))
                #expect(saga.objectValue?["correlation_id"] == "corr-obs-1")

                let lines = system.logs.lines(where: "saga.id", is: id)
                // Workers log with the command's headers; the reply consumer, with the reply's.
                let workerAnswers = lines.filter { $0.message == "command answered" }
                #expect(
                    Set(workerAnswers.compactMap { $0.metadata["saga.step"] }) == [
                        "debit-sender", "fraud-check", "credit-receiver", "notify", "audit",
                    ])
                #expect(lines.contains { $0.message == "reply applied" })
                #expect(lines.contains { $0.message.hasPrefix("saga_completed") && $0.level == .info })
                #expect(lines.contains { $0.message.hasPrefix("command_sent") && $0.level == .debug })
                for line in lines {
                    #expect(line.metadata["correlation.id"] == "corr-obs-1", "\(line.message) \(line.metadata)")
                    #expect(line.metadata["trace.id"] == Self.traceID, "\(line.message) \(line.metadata)")
                }
            }
        }

        @Test("without a traceparent a saga starts its own trace; a compensation logs at notice")
        func newTraceAndCompensationLevels() async throws {
            try await FintechHarness.run { system in
                try await system.ledger.openAccount("o-c", currency: "EUR", balance: 1_000_000)
                try await system.ledger.openAccount("o-d", currency: "EUR", balance: 0)
                // Large and round, so over the fraud threshold: the fraud check fails after the
                // debit, which is refunded.
                let response = try await system.baton.request(
                    "POST", "/v1/sagas", body: Data(Self.transfer("o-2", from: "o-c", to: "o-d", amount: 600_000).canonicalJSON.utf8),
                    headers: ["traceparent": "not-a-trace-context"])
                guard let id = response.body.objectValue?["id"]?.stringValue else {
                    Issue.record("no saga id in \(response.body)")
                    return
                }
                #expect(try await system.settled(id).saga.status == .failed)
                let saga = try await system.baton.get("/v1/sagas/\(id)")
                guard let traceparent = saga.objectValue?["traceparent"]?.stringValue, let trace = SagaTrace.ids(of: traceparent) else {
                    Issue.record("the saga has no valid traceparent: \(saga)")
                    return
                }
                #expect(trace.traceID != String(repeating: "0", count: 32))
                let lines = system.logs.lines(where: "saga.id", is: id)
                #expect(!lines.isEmpty)
                #expect(lines.allSatisfy { $0.metadata["trace.id"] == trace.traceID })
                #expect(lines.contains { $0.message.hasPrefix("compensation_started") && $0.level == .notice })
                #expect(lines.contains { $0.message.hasPrefix("step_compensated") && $0.level == .notice })
                #expect(lines.contains { $0.message.hasPrefix("saga_failed") && $0.level == .notice })
            }
        }

        @Test("a suspended saga logs at error; normal progress stays at debug and info")
        func levels() {
            #expect(TransitionLog.level(of: .sagaSuspended) == .error)
            #expect(TransitionLog.level(of: .stepSucceeded) == .debug)
            #expect(TransitionLog.level(of: .sagaCompleted) == .info)
            #expect(TransitionLog.level(of: .stepCompensated) == .notice)
        }
    }
}
