import BatonCore
import BatonParticipants
import BatonStore
import BatonTransport
import Foundation
import Logging
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension EndToEndSuites {
    /// One transfer's spans, exported over OTLP by three processes: `baton serve` (the submission
    /// and every transition), the Swift participants (`baton-participants`: fraud, notifications,
    /// audit) and the Python ledger (`sdk/python/examples/fintech.py`), received by a small OTLP
    /// receiver (`Tests/Tracing/otlp_receiver.py`), form one trace under the caller's span.
    @Suite("Traces over OTLP")
    struct TracingEndToEndTests {
        static let logger = Logger(label: "baton.test.tracing")
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../../..").standardized

        struct Span: Decodable {
            var service: String
            var name: String
            var traceID: String
            var spanID: String
            var parentSpanID: String

            enum CodingKeys: String, CodingKey {
                case service, name
                case traceID = "trace_id"
                case spanID = "span_id"
                case parentSpanID = "parent_span_id"
            }
        }

        static func start(_ arguments: [String], executable: URL, environment: [String: String], output: Pipe? = nil) throws -> Process {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardOutput = output ?? FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }

        @Test("a transfer through baton serve, a Swift worker and a Python worker arrives as one trace")
        func oneTrace() async throws {
            let spansFile = FileManager.default.temporaryDirectory.appending(path: "baton-spans-\(UUID().uuidString).jsonl")
            defer { try? FileManager.default.removeItem(at: spansFile) }
            let receiverPort = try LoopbackPort.free()
            let receiverOutput = Pipe()
            let receiver = try Self.start(
                ["python3", Self.root.appending(path: "Tests/Tracing/otlp_receiver.py").path, "\(receiverPort)", spansFile.path],
                executable: URL(fileURLWithPath: "/usr/bin/env"), environment: [:], output: receiverOutput)
            defer { receiver.stop() }
            let ready = await ServeProcessTests.listeningLine(receiverOutput)
            try #require(ready.contains("listening"), "the OTLP receiver did not start (scripts/test installs opentelemetry-proto)")

            let nats = try PrivateNATS()
            defer { nats.remove() }
            let batonDatabase = try await StoreFixture.createDatabase()
            let participantsDatabase = try await StoreFixture.createDatabase()
            let telemetry = [
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(receiverPort)", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            ]
            try await StoreFixture.withClient(participantsDatabase) { participants in
                let ledger = Ledger(client: participants, logger: Self.logger)
                try await ledger.prepare()
                try await ledger.openAccount("acc-a", currency: "EUR", balance: 100_000)
                try await ledger.openAccount("acc-b", currency: "EUR", balance: 0)
            }
            let database = { (url: DatabaseURL) in "postgres://\(url.username)@\(url.host):\(url.port)/\(url.database)" }
            let workflows = FileManager.default.temporaryDirectory.appending(path: "baton-tracing-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: workflows, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: workflows) }
            try FileManager.default.copyItem(
                at: FintechHarness.workflows.appending(path: "funds-transfer.yaml"), to: workflows.appending(path: "funds-transfer.yaml"))
            let server = try await ServeProcessTests.Server.start(
                databaseURL: database(batonDatabase), natsURL: nats.url, workflows: workflows, environment: telemetry)
            defer { server.kill() }
            let swiftWorkers = try Self.start(
                [
                    "run", "fraud", "notifications", "audit", "--nats-url", nats.url, "--database-url", database(participantsDatabase),
                    "--metrics-listen", "127.0.0.1:0",
                ],
                executable: try ServeProcessTests.built("baton-participants"), environment: telemetry)
            defer { swiftWorkers.stop() }
            let pythonLedger = try Self.start(
                [
                    "python3", Self.root.appending(path: "sdk/python/examples/fintech.py").path, "ledger", "--nats-url", nats.url,
                    "--database-url", database(participantsDatabase),
                ],
                executable: URL(fileURLWithPath: "/usr/bin/env"), environment: telemetry)
            defer { pythonLedger.stop() }

            // The caller's span: the saga's trace is the caller's.
            let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let callerSpan = "00f067aa0ba902b7"
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/v1/sagas")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("00-\(traceID)-\(callerSpan)-01", forHTTPHeaderField: "traceparent")
            request.httpBody = Data(
                #"{"workflow":"funds-transfer","input":{"transfer_id":"t-trace","from_account":"acc-a","to_account":"acc-b","amount":2500,"currency":"EUR"}}"#
                    .utf8)
            let submitted = ContinuousClock.now
            let (body, _) = try await URLSession.shared.data(for: request)
            let id = try #require(try JSONDecoder().decode(JSONValue.self, from: body).value(at: ["id"])?.stringValue)

            let statuses = try await StoreFixture.withClient(batonDatabase) { client in
                try await ServeProcessTests.settle([id], in: SagaStore(client: client, logger: Self.logger))
            }
            #expect(statuses == [.completed])
            Self.logger.info("tracing: the transfer settled in \(ContinuousClock.now - submitted)")

            // Spans arrive in batches: wait for the last worker's and the last transition's.
            var spans: [Span] = []
            func services() -> Set<String> { Set(spans.filter { $0.traceID == traceID }.map(\.service)) }
            for _ in 0..<100 {
                let text = (try? String(contentsOf: spansFile, encoding: .utf8)) ?? ""
                spans = text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Span.self, from: Data($0.utf8)) }
                let names = Set(spans.map(\.name))
                if services() == ["baton", "baton-participants", "baton-fintech-python"], names.contains("audit.record"),
                    names.contains("ledger.credit"), spans.filter({ $0.name == "saga.reply" }).count >= 5,
                    spans.filter({ $0.name == "baton.publish" }).count >= 5
                {
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            let mine = spans.filter { $0.traceID == traceID }
            Self.logger.info(
                "tracing: \(mine.count) spans in the saga's trace",
                metadata: ["spans": "\(Dictionary(grouping: mine, by: \.service).mapValues(\.count))"])
            #expect(services() == ["baton", "baton-participants", "baton-fintech-python"], "\(Set(spans.map(\.service)))")
            #expect(mine.count == spans.count, "every span of the run is in the saga's trace")
            let submit = try #require(mine.first { $0.name == "saga.submit" })
            #expect(submit.parentSpanID == callerSpan, "the submission is a child of the caller's span")
            #expect(mine.contains { $0.service == "baton" && $0.name == "saga.start" && $0.parentSpanID == submit.spanID })
            for worker in ["ledger.debit", "ledger.credit"] {
                #expect(
                    mine.contains { $0.service == "baton-fintech-python" && $0.name == worker && $0.parentSpanID == submit.spanID },
                    "\(worker)")
            }
            for worker in ["fraud.score", "notifications.send", "audit.record"] {
                #expect(
                    mine.contains { $0.service == "baton-participants" && $0.name == worker && $0.parentSpanID == submit.spanID },
                    "\(worker)")
            }
            #expect(mine.filter { $0.service == "baton" && $0.name == "saga.reply" }.count >= 5, "a span per reply applied")
            #expect(mine.filter { $0.service == "baton" && $0.name == "baton.publish" }.count >= 5, "a span per command published")
        }
    }
}
