import BatonCore
import Foundation
import Prometheus
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension EndToEndSuites {
    /// `GET /metrics` moves with the sagas: counters by workflow, histograms, and sampled gauges.
    @Suite("Metrics", .serialized)
    struct MetricsTests {
        /// The value of the sample line `name{labels}` (exactly as written), or nil.
        static func value(_ text: String, _ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }

        @Test("started, completed, failed and compensated sagas, step durations and in-flight gauges are exposed")
        func metricsMove() async throws {
            try await FintechHarness.run { system in
                try await system.ledger.openAccount("m-a", currency: "EUR", balance: 10_000)
                try await system.ledger.openAccount("m-b", currency: "EUR", balance: 0)
                let transfer: (String, Int64) -> JSONValue = { id, amount in
                    ["transfer_id": .string(id), "from_account": "m-a", "to_account": "m-b", "amount": .integer(amount), "currency": "EUR"]
                }
                let before = try await Self.scrape(system)
                #expect(Self.value(before, #"baton_sagas_started_total{workflow="funds-transfer"}"#) == nil)

                #expect(try await system.settled(try await system.submit("funds-transfer", transfer("m-1", 500))).saga.status == .completed)
                #expect(try await system.settled(try await system.submit("funds-transfer", transfer("m-2", 99_999))).saga.status == .failed)

                let text = try await Self.scrape(system)
                #expect(Self.value(text, #"baton_sagas_started_total{workflow="funds-transfer"}"#) == 2)
                #expect(Self.value(text, #"baton_sagas_completed_total{workflow="funds-transfer"}"#) == 1)
                #expect(Self.value(text, #"baton_sagas_failed_total{workflow="funds-transfer"}"#) == 1)
                #expect(Self.value(text, #"baton_step_duration_seconds_count{workflow="funds-transfer",step="credit-receiver"}"#) == 1)
                #expect(Self.value(text, #"baton_saga_duration_seconds_count{workflow="funds-transfer"}"#) == 2)
                #expect((Self.value(text, "baton_command_publish_seconds_count") ?? 0) >= 6)
                #expect((Self.value(text, "baton_reply_apply_seconds_count") ?? 0) >= 6)
                // Every reply went through a batch: the batch sizes add up to the replies applied.
                #expect((Self.value(text, #"baton_batch_size_count{source="replies"}"#) ?? 0) >= 1)
                #expect((Self.value(text, #"baton_batch_size_sum{source="replies"}"#) ?? 0) >= 6)
                #expect(Self.value(text, #"baton_sagas_in_flight{status="PROCESSING"}"#) == 0)
                #expect(Self.value(text, "baton_outbox_unpublished") == 0)
                #expect(Self.value(text, "baton_outbox_lag_seconds") == 0)

                // The workers' own handler metrics, from the registry their /metrics serves.
                let workers = String(decoding: system.workerMetrics.registry.emitToBuffer(), as: UTF8.self)
                let debits = #"baton_worker_commands_total{participant="ledger",action="debit",direction="action",outcome="#
                #expect(Self.value(workers, debits + #""succeeded"}"#) == 1)
                #expect(Self.value(workers, debits + #""failed"}"#) == 1)
                #expect(
                    Self.value(workers, #"baton_worker_handler_seconds_count{participant="fraud",action="score",direction="action"}"#) == 1)
                #expect(Self.value(workers, #"baton_worker_in_flight{participant="ledger"}"#) == 0)
            }
        }

        static func scrape(_ system: FintechHarness) async throws -> String {
            let url = try #require(URL(string: system.baton.base + "/metrics"))
            let (data, _) = try await URLSession.shared.data(from: url)
            return String(decoding: data, as: UTF8.self)
        }
    }
}
