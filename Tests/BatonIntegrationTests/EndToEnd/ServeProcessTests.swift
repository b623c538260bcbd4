import BatonCore
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension EndToEndSuites {
    /// `baton serve` as the process operators run: killed with SIGKILL in the middle of many sagas and
    /// restarted, and two replicas sharing one database and NATS. Participants apply their effects
    /// behind the idempotency barrier and record each one, so "applied twice" would show.
    @Suite("baton serve processes", .serialized)
    struct ServeProcessTests {
        static let logger = Logger(label: "baton.test.serve")

        /// The `baton` executable built beside the tests.
        static var executable: URL {
            get throws { try built("baton") }
        }

        /// An executable of the package, built beside the tests.
        static func built(_ name: String) throws -> URL {
            let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()].map {
                $0.appendingPathComponent(name)
            }
            return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }, "build \(name) first")
        }

        /// The line the server prints once it accepts requests ("baton serve: listening on
        /// http://host:port"), or an empty one if it exits first.
        static func listeningLine(_ output: Pipe) async -> String {
            await startupOutput(output).split(separator: "\n").last { $0.contains("listening on") }.map(String.init) ?? ""
        }

        /// Everything printed up to and including the listening line (empty if the process exits first).
        static func startupOutput(_ output: Pipe) async -> String {
            let handle = output.fileHandleForReading
            return await withCheckedContinuation { continuation in
                // Reading a pipe blocks: on a thread of its own.
                Thread.detachNewThread {
                    var text = ""
                    while true {
                        // Complete lines only: the last piece may still be arriving.
                        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                        if let index = lines.firstIndex(where: { $0.contains("listening on") }) {
                            continuation.resume(returning: lines[...index].joined(separator: "\n"))
                            return
                        }
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        text += String(decoding: chunk, as: UTF8.self)
                    }
                    continuation.resume(returning: "")
                }
            }
        }

        /// A running `baton serve` and the port it listens on.
        struct Server {
            let process: Process
            let port: Int

            static func start(
                databaseURL: String, natsURL: String, workflows: URL, environment: [String: String] = [:]
            ) async throws -> Server {
                let process = Process()
                process.executableURL = try ServeProcessTests.executable
                process.arguments = [
                    "serve", "--database-url", databaseURL, "--nats-url", natsURL, "--http", "127.0.0.1:0", "--workflows", workflows.path,
                ]
                if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                try process.run()
                let line = await ServeProcessTests.listeningLine(output)
                let port = try #require(line.split(separator: ":").last.flatMap { Int($0) }, "baton serve did not start")
                return Server(process: process, port: port)
            }

            func kill() {
                Glibc.kill(process.processIdentifier, SIGKILL)
                process.waitForEnd()
            }

            /// Whether its `baton_batch_size` histogram for replies shows a transaction that applied
            /// more than one (its sum above its count).
            func appliedBatchesOfMoreThanOne() async throws -> Bool {
                let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
                func value(_ name: String) -> Double {
                    String(decoding: data, as: UTF8.self).split(separator: "\n")
                        .first { $0.hasPrefix(name + "{") && $0.contains(#"source="replies""#) }
                        .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
                }
                return value("baton_batch_size_sum") > value("baton_batch_size_count")
            }

            func submit(amount: Int) async throws -> String {
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/sagas")!)
                request.httpMethod = "POST"
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = Data(#"{"workflow":"e2e-order","input":{"amount":\#(amount)}}"#.utf8)
                let (data, response) = try await URLSession.shared.data(for: request)
                #expect((response as? HTTPURLResponse)?.statusCode == 202)
                return try #require(try JSONDecoder().decode(JSONValue.self, from: data).value(at: ["id"])?.stringValue)
            }
        }

        /// The whole system around `body`: a private JetStream server, a database for Baton and one for
        /// the participants, and workers whose every effect is recorded behind the barrier.
        static func withSystem(
            _ body: (_ databaseURL: String, _ natsURL: String, _ workflows: URL, _ store: SagaStore, _ effects: PostgresClient) async throws
                ->
                Void
        )
            async throws
        {
            let port = try LoopbackPort.free()
            let storage = FileManager.default.temporaryDirectory.appending(path: "baton-serve-\(UUID().uuidString)")
            let nats = try ReconnectTests.startServer(port: port, arguments: ["-js", "-sd", storage.path])
            defer {
                nats.terminate()
                try? FileManager.default.removeItem(at: storage)
            }
            let natsURL = "nats://127.0.0.1:\(port)"
            let workflows = storage.appending(path: "workflows")
            try FileManager.default.createDirectory(at: workflows, withIntermediateDirectories: true)
            try EngineHarness.workflowSource.write(to: workflows.appending(path: "e2e-order.yaml"), atomically: true, encoding: .utf8)

            let batonDatabase = try await StoreFixture.createDatabase()
            let participantDatabase = try await StoreFixture.createDatabase()
            try await StoreFixture.withClient(batonDatabase) { batonClient in
                try await StoreFixture.withClient(participantDatabase) { participants in
                    let barrier = IdempotencyBarrier(client: participants, logger: logger)
                    try await barrier.prepare()
                    try await participants.query("CREATE TABLE effects (saga_id text, step text, direction text)")
                    var handlers: [String: WorkerHandlers] = [:]
                    for (participant, action) in [("inventory", "reserve"), ("payments", "charge"), ("notifications", "send")] {
                        var set = WorkerHandlers()
                        set.action(action, barrier: barrier) { context, connection in
                            // Work that takes a while, so that many sagas are mid-flight when the server dies.
                            try await Task.sleep(for: .milliseconds(Int.random(in: 50...250)))
                            let command = context.command
                            try await connection.query(
                                "INSERT INTO effects VALUES (\(command.sagaID), \(command.step), \(command.direction.rawValue))",
                                logger: logger
                            )
                            return ["done": .string(action)]
                        }
                        handlers[participant] = set
                    }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (participant, set) in handlers {
                            let worker = Worker(
                                configuration: .init(participant: participant, nats: .init(urlList: natsURL, name: participant)),
                                handlers: set, logger: logger)
                            group.addTask { try await worker.run() }
                        }
                        let url = batonDatabase
                        let databaseURL = "postgres://\(url.username)@\(url.host):\(url.port)/\(url.database)"
                        try await body(databaseURL, natsURL, workflows, SagaStore(client: batonClient, logger: logger), participants)
                        group.cancelAll()
                        try await group.waitForAll()
                    }
                }
            }
        }

        /// Waits until every saga is finished (up to 60 s); returns their statuses.
        static func settle(_ ids: [String], in store: SagaStore) async throws -> [SagaStatus] {
            let end = ContinuousClock.now + .seconds(60)
            var statuses: [SagaStatus] = []
            repeat {
                statuses = []
                for id in ids { statuses.append(try await store.saga(id: id)?.saga.status ?? .pending) }
                if statuses.allSatisfy(\.isTerminal) { break }
                try await Task.sleep(for: .milliseconds(200))
            } while ContinuousClock.now < end
            return statuses
        }

        /// How many times each (saga, step, direction) effect was applied.
        static func effectCounts(_ client: PostgresClient) async throws -> [Int] {
            var counts: [Int] = []
            let rows = try await client.query("SELECT count(*) FROM effects GROUP BY saga_id, step, direction")
            for try await count in rows.decode(Int.self) { counts.append(count) }
            return counts
        }

        @Test("kill -9 in the middle of many sagas, then restart: every saga finishes, no effect is applied twice")
        func crashAndRestart() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, store, effects in
                let first = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                var ids: [String] = []
                for amount in 1...40 { ids.append(try await first.submit(amount: amount)) }
                try await Task.sleep(for: .milliseconds(200))
                first.kill()
                let inFlight = try await store.listSagas(SagaListQuery(stuck: [.runningLongerThan(.init(milliseconds: 0))]), now: .now)
                let second = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { second.kill() }

                let statuses = try await Self.settle(ids, in: store)
                #expect(statuses.allSatisfy { $0 == .completed }, "\(Dictionary(grouping: statuses, by: \.self).mapValues(\.count))")
                let counts = try await Self.effectCounts(effects)
                #expect(counts.count == ids.count * 3)
                #expect(counts.allSatisfy { $0 == 1 })
                print("crash test: \(inFlight.sagas.count) of \(ids.count) sagas were in flight when baton serve was killed")
                // The kill landed in the middle of the work, or the test proves nothing.
                #expect(inFlight.sagas.count > 0)
            }
        }

        @Test("retention in baton serve: finished sagas past their age are archived, then removed; the rest stay; a metric counts them")
        func retention() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, store, _ in
                let archive = FileManager.default.temporaryDirectory.appending(path: "baton-archive-\(UUID().uuidString)")
                defer { try? FileManager.default.removeItem(at: archive) }
                let server = try await Server.start(
                    databaseURL: databaseURL, natsURL: natsURL, workflows: workflows,
                    environment: ["BATON_RETENTION": "1d", "BATON_ARCHIVE_DIR": archive.path, "BATON_RETENTION_INTERVAL": "200ms"])
                defer { server.kill() }
                var ids: [String] = []
                for amount in 1...6 { ids.append(try await server.submit(amount: amount)) }
                #expect(try await Self.settle(ids, in: store).allSatisfy { $0 == .completed })
                // Three of them finished two days ago, as far as retention can tell.
                let aged = Array(ids.prefix(3))
                try await store.client.query(
                    """
                    UPDATE baton.sagas SET created_at = created_at - interval '2 days', finished_at = finished_at - interval '2 days'
                    WHERE id = ANY(\(aged.compactMap(UUID.init(uuidString:))))
                    """)
                var left = ids.count
                for _ in 0..<100 where left > 3 {
                    try await Task.sleep(for: .milliseconds(100))
                    left = try await StoreFixture.scalar(store, "SELECT count(*) FROM baton.sagas", as: Int.self) ?? -1
                }
                #expect(left == 3)
                for id in aged { #expect(try await store.saga(id: id) == nil) }
                for id in ids.suffix(3) { #expect(try await store.saga(id: id)?.saga.status == .completed) }

                let files = (try? FileManager.default.contentsOfDirectory(atPath: archive.path)) ?? []
                let lines = try files.flatMap {
                    try String(contentsOf: archive.appending(path: $0), encoding: .utf8).split(separator: "\n").map(String.init)
                }
                #expect(Set(lines.compactMap { try? JSONParser.parse($0).value(at: ["saga", "id"])?.stringValue }) == Set(aged))
                let (metrics, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.port)/metrics")!)
                let text = String(decoding: metrics, as: UTF8.self)
                #expect(text.contains(#"baton_retention_sagas_removed_total{workflow="e2e-order"} 3"#), "\(text.prefix(4000))")
                #expect(text.contains(#"baton_retention_sagas_archived_total{workflow="e2e-order"} 3"#))
            }
        }

        @Test("a replica killed while it applies replies in batches: the other finishes every saga, each effect once")
        func replicaKilledMidBatch() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, store, effects in
                let doomed = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                var ids: [String] = []
                // Enough at once that replies queue up and are applied several to a transaction.
                try await withThrowingTaskGroup(of: String.self) { group in
                    for amount in 1...120 { group.addTask { try await doomed.submit(amount: amount) } }
                    for try await id in group { ids.append(id) }
                }
                // Killed as soon as it has applied a batch of more than one reply: it is in the middle
                // of batching when it dies, with others fetched, locked or half written.
                var batched = false
                for _ in 0..<200 where !batched {
                    batched = try await doomed.appliedBatchesOfMoreThanOne()
                    if !batched { try await Task.sleep(for: .milliseconds(10)) }
                }
                doomed.kill()
                #expect(batched, "no batch of more than one reply was applied before the kill")
                let inFlight = try await store.listSagas(SagaListQuery(stuck: [.runningLongerThan(.init(milliseconds: 0))]), now: .now)
                #expect(inFlight.sagas.count > 0, "the kill came after the work")

                let survivor = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { survivor.kill() }
                let statuses = try await Self.settle(ids, in: store)
                #expect(statuses.allSatisfy { $0 == .completed }, "\(Dictionary(grouping: statuses, by: \.self).mapValues(\.count))")
                let counts = try await Self.effectCounts(effects)
                #expect(counts.count == ids.count * 3)
                #expect(counts.allSatisfy { $0 == 1 })
            }
        }

        @Test("two replicas share one workload: every saga completes, each effect once")
        func twoReplicas() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, store, effects in
                let one = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                let two = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer {
                    one.kill()
                    two.kill()
                }
                var ids: [String] = []
                for amount in 1...30 { ids.append(try await (amount.isMultiple(of: 2) ? one : two).submit(amount: amount)) }
                let statuses = try await Self.settle(ids, in: store)
                #expect(statuses.allSatisfy { $0 == .completed })
                let counts = try await Self.effectCounts(effects)
                #expect(counts.count == ids.count * 3)
                #expect(counts.allSatisfy { $0 == 1 })
            }
        }

        /// Runs `baton ARGS…` against `server` and returns its exit status and output.
        static func baton(_ arguments: [String], server: Server) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = try executable
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["BATON_URL"] = "http://127.0.0.1:\(server.port)"
            process.environment = environment
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        @Test("the client commands: submit --wait, get, watch, list, cancel, workflows, signal; failures exit non-zero")
        func clientCommands() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, _, _ in
                let server = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { server.kill() }
                let submitted = try Self.baton(["submit", "e2e-order", "--input", #"{"amount":7}"#, "--wait"], server: server)
                #expect(submitted.status == 0, "\(submitted.output)")
                #expect(submitted.output.contains("status    COMPLETED"))
                let id = try #require(submitted.output.split(separator: "\n").first { $0.hasPrefix("saga") }?.split(separator: " ").last)

                let watched = try Self.baton(["watch", String(id)], server: server)
                #expect(watched.status == 0)
                #expect(watched.output.contains("saga_started") || watched.output.contains("started workflow"))
                let listed = try Self.baton(["list", "--json"], server: server)
                #expect(listed.output.contains(String(id)))
                let got = try Self.baton(["get", String(id), "--json"], server: server)
                #expect(try JSONDecoder().decode(JSONValue.self, from: Data(got.output.utf8)).value(at: ["status"]) == "COMPLETED")
                let refused = try Self.baton(["cancel", String(id)], server: server)
                #expect(refused.status != 0)
                #expect(refused.output.contains("409"))
                #expect(try Self.baton(["get", "0190f5a4-7b1c-7d2e-8f00-000000000000"], server: server).status != 0)
                #expect(try Self.baton(["submit", "e2e-order", "--input", "{}"], server: server).status != 0)
                let pushed = try Self.baton(["workflows", "push", workflows.path], server: server)
                #expect(pushed.status == 0)
                #expect(pushed.output.contains("unchanged  e2e-order v1"))

                // A saga waiting for a signal, sent from the command line.
                let approval = FileManager.default.temporaryDirectory.appending(path: "e2e-approval-\(UUID().uuidString).yaml")
                defer { try? FileManager.default.removeItem(at: approval) }
                try "name: e2e-approval\nversion: 1\nsteps:\n  - { name: await-approval, signal: approval, timeout: 1m }\n"
                    .write(to: approval, atomically: true, encoding: .utf8)
                #expect(try Self.baton(["workflows", "push", approval.path], server: server).status == 0)
                let waiting = try Self.baton(["submit", "e2e-approval"], server: server)
                let waitingID = waiting.output.trimmingCharacters(in: .whitespacesAndNewlines)
                let signalled = try Self.baton(
                    ["signal", waitingID, "approval", "--payload", #"{"by":"ops"}"#, "--key", "a-1"], server: server)
                #expect(signalled.status == 0, "\(signalled.output)")
                #expect(signalled.output.contains("COMPLETED (signal 'approval' received)"))
                let repeated = try Self.baton(
                    ["signal", waitingID, "approval", "--payload", #"{"by":"ops"}"#, "--key", "a-1"], server: server)
                #expect(repeated.output.contains("already received"))
                let done = try Self.baton(["get", waitingID, "--json"], server: server)
                #expect(
                    try JSONDecoder().decode(JSONValue.self, from: Data(done.output.utf8)).value(at: ["steps", "0", "output"]) == [
                        "by": "ops"
                    ])
                let shown = try Self.baton(["get", waitingID], server: server)
                #expect(shown.output.contains("SIGNAL"), "\(shown.output)")
                #expect(shown.output.range(of: #"approval\s+payload\s+local\s+await-approval"#, options: .regularExpression) != nil)
                let unreadable = try Self.baton(
                    ["signal", waitingID, "approval", "--payload", "@/nonexistent/payload.json"], server: server)
                #expect(unreadable.status != 0)
                #expect(unreadable.output.contains("--payload @/nonexistent/payload.json: the file cannot be read"))
            }
        }

        @Test(
            "the operator's commands, history, workflows show, list paging, watch --json through a pipe, --version, and errors that say what to do"
        )
        func operatorCommands() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, _, _ in
                // Charged (the pivot), then a reviewer's decision: a failed decision suspends it.
                try """
                name: e2e-review
                version: 1
                steps:
                  - { name: charge, participant: payments, action: charge, pivot: true }
                  - { name: review, signal: decision, timeout: 1m }
                """.write(to: workflows.appending(path: "e2e-review.yaml"), atomically: true, encoding: .utf8)
                let server = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { server.kill() }
                func suspended() throws -> String {
                    let id = try Self.baton(["submit", "e2e-review"], server: server).output.trimmingCharacters(in: .whitespacesAndNewlines)
                    let failed = try Self.baton(["signal", id, "decision", "--fail", "rejected"], server: server)
                    #expect(failed.status == 0, "\(failed.output)")
                    return id
                }
                func status(_ id: String) throws -> JSONValue? {
                    let got = try Self.baton(["get", id, "--json"], server: server)
                    return try JSONDecoder().decode(JSONValue.self, from: Data(got.output.utf8)).value(at: ["status"])
                }
                func settled(_ id: String, _ expected: JSONValue) async throws {
                    var polls = 0
                    while try status(id) != expected && polls < 100 {
                        polls += 1
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    #expect(try status(id) == expected, "saga \(id)")
                }

                let first = try suspended()
                try await settled(first, "SUSPENDED")
                let noReason = try Self.baton(["retry", first], server: server)
                #expect(noReason.status != 0 && noReason.output.contains("--reason"), "\(noReason.output)")
                let retried = try Self.baton(["retry", first, "--reason", "asked the reviewer again"], server: server)
                #expect(retried.status == 0 && retried.output.contains("PROCESSING  (retry recorded)"), "\(retried.output)")
                // The step waits again: skip it, by hand.
                #expect(try Self.baton(["signal", first, "decision", "--fail", "rejected", "--key", "again"], server: server).status == 0)
                try await settled(first, "SUSPENDED")
                let skipped = try Self.baton(["skip", first, "--step", "review", "--reason", "approved by phone"], server: server)
                #expect(skipped.status == 0, "\(skipped.output)")
                try await settled(first, "COMPLETED")
                let second = try suspended()
                try await settled(second, "SUSPENDED")
                #expect(try Self.baton(["resolve", second, "--reason", "refunded by hand"], server: server).status == 0)
                try await settled(second, "COMPLETED")
                let notSuspended = try Self.baton(["compensate", second, "--reason", "x"], server: server)
                #expect(notSuspended.status != 0 && notSuspended.output.contains("409"), "\(notSuspended.output)")

                let history = try Self.baton(["history", first], server: server)
                #expect(history.output.contains("operator_action") && history.output.contains("approved by phone"), "\(history.output)")
                #expect(
                    history.output.range(of: #"operator_action\s+review\s+SUSPENDED → PROCESSING\s+local"#, options: .regularExpression)
                        != nil)
                let lines = try Self.baton(["history", first, "--json"], server: server).output.split(separator: "\n")
                #expect(lines.count > 5 && lines.allSatisfy { (try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8))) != nil })

                let shown = try Self.baton(["workflows", "show", "e2e-review@1"], server: server)
                #expect(
                    shown.output.contains("waits for signal decision")
                        && shown.output.range(of: #"charge\s+payments.charge\s+pivot"#, options: .regularExpression) != nil,
                    "\(shown.output)"
                )
                let noVersion = try Self.baton(["workflows", "show", "e2e-review@7"], server: server)
                #expect(noVersion.status != 0 && noVersion.output.contains("has no version 7; it has 1"), "\(noVersion.output)")

                // Paging: one saga a page, then every page.
                let page = try Self.baton(["list", "--workflow", "e2e-review", "--limit", "1"], server: server)
                #expect(page.output.contains("more: add --cursor"), "\(page.output)")
                let everything = try Self.baton(["list", "--workflow", "e2e-review", "--limit", "1", "--all", "--json"], server: server)
                let listed = try JSONDecoder().decode(JSONValue.self, from: Data(everything.output.utf8))
                #expect(listed.value(at: ["sagas"])?.arrayValue?.count == 2 && listed.value(at: ["next_cursor"]) == .null)

                // watch --json streams: its first line arrives through a pipe while the saga still waits.
                let waiting = try Self.baton(["submit", "e2e-review"], server: server).output.trimmingCharacters(
                    in: .whitespacesAndNewlines)
                let watch = Process()
                watch.executableURL = try Self.executable
                watch.arguments = ["watch", waiting, "--json"]
                watch.environment = ProcessInfo.processInfo.environment.merging(["BATON_URL": "http://127.0.0.1:\(server.port)"]) { $1 }
                let pipe = Pipe()
                watch.standardOutput = pipe
                try watch.run()
                defer { if watch.isRunning { watch.terminate() } }
                let firstLine = await Self.firstLine(pipe)
                #expect(try JSONDecoder().decode(JSONValue.self, from: Data(firstLine.utf8)).value(at: ["kind"]) == "saga_started")
                #expect(watch.isRunning, "the saga still waits for its decision")
                #expect(try Self.baton(["signal", waiting, "decision", "--payload", "{}"], server: server).status == 0)
                let rest = pipe.fileHandleForReading.readDataToEndOfFile()
                watch.waitUntilExit()
                #expect(watch.terminationStatus == 0)
                #expect(String(decoding: rest, as: UTF8.self).contains("saga_completed"))

                let version = try Self.baton(["--version"], server: server).output.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(version.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil, "\(version)")
                let process = Process()
                process.executableURL = try Self.executable
                process.arguments = ["list"]
                process.environment = ProcessInfo.processInfo.environment.merging(["BATON_URL": "localhost:8080"]) { $1 }
                let output = Pipe()
                process.standardError = output
                process.standardOutput = output
                try process.run()
                let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(process.terminationStatus != 0 && said.contains("BATON_URL 'localhost:8080' is not a server URL"), "\(said)")
                #expect(said.contains("http://localhost:8080"))
            }
        }

        @Test("a participant with no worker is seen within seconds: GET /v1/participants, the saga's warning, get, participants, a metric")
        func missingParticipant() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, _, _ in
                try """
                name: e2e-lonely
                version: 1
                steps:
                  - { name: reserve, participant: inventory, action: reserve }
                  - { name: greet, participant: greeter, action: hello, timeout: 5m }
                """.write(to: workflows.appending(path: "e2e-lonely.yaml"), atomically: true, encoding: .utf8)
                let server = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { server.kill() }
                let id = try Self.baton(["submit", "e2e-lonely"], server: server).output.trimmingCharacters(in: .whitespacesAndNewlines)
                let started = ContinuousClock.now
                var participants = JSONValue.null
                func workers(_ name: String) -> JSONValue? {
                    participants.value(at: ["participants"])?.arrayValue?.first { $0.value(at: ["name"]) == .string(name) }?
                        .value(at: ["workers"])
                }
                while ContinuousClock.now - started < .seconds(30) {
                    let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.port)/v1/participants")!)
                    participants = try JSONDecoder().decode(JSONValue.self, from: data)
                    if workers("greeter") == .bool(false) && workers("inventory") == .bool(true) { break }
                    try await Task.sleep(for: .milliseconds(250))
                }
                #expect(workers("greeter") == .bool(false), "\(participants)")
                #expect(workers("inventory") == .bool(true), "\(participants)")
                #expect(ContinuousClock.now - started < .seconds(20), "seen within seconds of the server's start")

                let shown = try Self.baton(["get", id], server: server)
                #expect(shown.output.contains("waits for participant 'greeter', which has no worker"), "\(shown.output)")
                let listed = try Self.baton(["participants"], server: server)
                #expect(listed.output.range(of: #"greeter\s+none\s+yes\s+1\s+0"#, options: .regularExpression) != nil, "\(listed.output)")
                #expect(listed.output.range(of: #"inventory\s+yes"#, options: .regularExpression) != nil, "\(listed.output)")
                let (metrics, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.port)/metrics")!)
                let text = String(decoding: metrics, as: UTF8.self)
                #expect(text.contains(#"baton_participant_workers{participant="greeter"} 0"#), "\(text.prefix(2000))")
                #expect(text.contains(#"baton_participant_commands_pending{participant="greeter"} 1"#))
                let page = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.port)/ui/sagas/\(id)")!).0
                #expect(String(decoding: page, as: UTF8.self).contains("which has no worker"))
            }
        }

        /// The first line a process writes to a pipe (empty when it closes first).
        static func firstLine(_ pipe: Pipe) async -> String {
            await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    var text = ""
                    let handle = pipe.fileHandleForReading
                    while !text.contains("\n") {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        text += String(decoding: chunk, as: UTF8.self)
                    }
                    continuation.resume(returning: String(text.split(separator: "\n").first ?? ""))
                }
            }
        }

        @Test("SIGTERM drains and exits cleanly; the sagas it leaves are finished by the next process")
        func gracefulShutdown() async throws {
            try await Self.withSystem { databaseURL, natsURL, workflows, store, effects in
                let first = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                var ids: [String] = []
                for amount in 1...10 { ids.append(try await first.submit(amount: amount)) }
                Glibc.kill(first.process.processIdentifier, SIGTERM)
                first.process.waitUntilExit()
                #expect(first.process.terminationReason == .exit)
                #expect(first.process.terminationStatus == 0)

                let second = try await Server.start(databaseURL: databaseURL, natsURL: natsURL, workflows: workflows)
                defer { second.kill() }
                #expect(try await Self.settle(ids, in: store).allSatisfy { $0 == .completed })
                #expect(try await Self.effectCounts(effects).allSatisfy { $0 == 1 })
            }
        }

        /// How long SIGTERM may take to end `baton serve` (docs/operations.md, Shutdown).
        static let shutdownBound = Duration.seconds(15)

        /// Starts `baton dev` with its data in `data`, serving the e2e workflow on `port`.
        /// Starts `baton dev`; its log goes to `log` when given (read it when a test fails).
        static func startDev(data: URL, port: Int, log: URL? = nil, errors: Bool = false, extra: [String] = []) throws -> (Process, Pipe) {
            let process = Process()
            process.executableURL = try executable
            process.arguments =
                [
                    "dev", "--data", data.path, "--http", "127.0.0.1:\(port)", "--workflows", EngineHarnessFiles.workflows.path,
                ] + extra
            let output = Pipe()
            process.standardOutput = output
            if let log {
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                process.standardError = try FileHandle(forWritingTo: log)
                // Debug: the service group says which service it waits for.
                process.environment = ProcessInfo.processInfo.environment.merging(["BATON_LOG_LEVEL": "debug"]) { $1 }
            } else {
                process.standardError = errors ? output : FileHandle.nullDevice
            }
            try process.run()
            return (process, output)
        }

        /// Sends SIGTERM to each process and waits until all have exited or ``shutdownBound`` passed.
        /// - Returns: How long it took.
        static func terminate(_ processes: [Process]) async throws -> Duration {
            let start = ContinuousClock.now
            for process in processes { Glibc.kill(process.processIdentifier, SIGTERM) }
            while !processes.allSatisfy(\.hasEnded) && ContinuousClock.now - start < shutdownBound {
                try await Task.sleep(for: .milliseconds(50))
            }
            for process in processes where process.hasEnded && process.isRunning {
                // Worth knowing when reading a run: the reason `isRunning` is not asked (ProcessEnd.swift).
                logger.notice("process \(process.processIdentifier) has ended, but Foundation has not noticed yet")
            }
            return ContinuousClock.now - start
        }

        @Test(
            "SIGTERM ends baton within the documented bound during a PostgreSQL outage, while PostgreSQL answers nothing, and during a NATS outage",
            arguments: ["postgres", "postgres-frozen", "nats"])
        func shutdownDuringOutage(_ outage: String) async throws {
            let data = FileManager.default.temporaryDirectory.appending(path: "baton-outage-\(UUID().uuidString)")
            let log = FileManager.default.temporaryDirectory.appending(path: "baton-outage-\(UUID().uuidString).log")
            defer {
                try? FileManager.default.removeItem(at: data)
                try? FileManager.default.removeItem(at: log)
            }
            let port = try LoopbackPort.free()
            let (process, output) = try Self.startDev(data: data, port: port, log: log)
            defer { if !process.hasEnded { Glibc.kill(process.processIdentifier, SIGKILL) } }
            let startup = await Self.startupOutput(output)
            try #require(startup.contains("listening on"), "baton dev did not start: \(startup)")
            func url(_ label: String) throws -> String {
                let line = try #require(startup.split(separator: "\n").first { $0.hasPrefix("baton dev: \(label)") })
                return String(try #require(line.split(separator: " ").last))
            }
            // Work in flight: commands wait for participants that never come. And participants'
            // workers of their own, which must stop on SIGTERM through the same outage.
            let server = Server(process: process, port: port)
            for amount in 1...5 { _ = try await server.submit(amount: amount) }
            let participants = Process()
            participants.executableURL = try Self.built("baton-participants")
            participants.arguments = [
                "run", "ledger", "fraud", "--nats-url", try url("NATS"), "--database-url", try url("PostgreSQL"),
                // Port 0: a free one, which it says once it listens.
                "--metrics-listen", "127.0.0.1:0",
            ]
            let participantsOutput = Pipe()
            participants.standardOutput = participantsOutput
            participants.standardError = FileHandle.nullDevice
            try participants.run()
            defer { if !participants.hasEnded { Glibc.kill(participants.processIdentifier, SIGKILL) } }
            let metricsLine = await Self.firstLine(participantsOutput)
            let metricsURL = try #require(metricsLine.split(separator: " ").last.map(String.init), "\(metricsLine)")
            #expect(metricsURL.hasPrefix("http://127.0.0.1:") && !metricsURL.hasPrefix("http://127.0.0.1:0/"), "\(metricsLine)")
            let (_, health) = try await URLSession.shared.data(
                from: URL(string: metricsURL.replacingOccurrences(of: "/metrics", with: "/healthz"))!)
            #expect((health as? HTTPURLResponse)?.statusCode == 200)
            try await Task.sleep(for: .seconds(2))
            #expect(!participants.hasEnded, "baton-participants did not start")

            var frozen: [pid_t] = []
            defer {
                // The stopped backends lose their postmaster to baton dev's SIGKILL; let them see it.
                for process in frozen { Glibc.kill(process, SIGCONT) }
            }
            switch outage {
            case "postgres", "postgres-frozen":
                let databaseURL = try url("PostgreSQL")
                let directory = try await StoreFixture.withClient(try DatabaseURL(databaseURL)) { client in
                    var found = ""
                    for try await setting in try await client.query("SHOW data_directory", logger: Self.logger).decode(String.self) {
                        found = setting
                    }
                    return found
                }
                let pidText = try String(contentsOfFile: directory + "/postmaster.pid", encoding: .utf8)
                let postmaster = try #require(pidText.split(separator: "\n").first.flatMap { Int32($0) })
                if outage == "postgres" {
                    // PostgreSQL goes away at once (SIGQUIT to the postmaster: immediate shutdown).
                    Glibc.kill(postmaster, SIGQUIT)
                } else {
                    // A database host that hangs: connections stay open, and nothing answers on them,
                    // not even `pg_ctl stop`.
                    frozen = [postmaster] + Self.children(of: postmaster)
                    for process in frozen { Glibc.kill(process, SIGSTOP) }
                }
            default:
                let natsPort = try #require(try url("NATS").split(separator: ":").last.flatMap { Int($0) })
                let killer = Process()
                killer.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
                killer.arguments = ["-KILL", "-f", "nats-server -js -a 127.0.0.1 -p \(natsPort) "]
                try killer.run()
                killer.waitUntilExit()
            }
            // Let the services meet the outage (failed queries, reconnect loops, backoff).
            try await Task.sleep(for: .seconds(3))

            let took = try await Self.terminate([process, participants])
            #expect(
                process.hasEnded,
                """
                baton was still running \(Self.shutdownBound) after SIGTERM during a \(outage) outage; the end of its log:
                \(((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
                    .filter { !$0.contains("Connection creation failed") }.suffix(60).joined(separator: "\n"))
                """)
            #expect(
                participants.hasEnded,
                "baton-participants was still running \(Self.shutdownBound) after SIGTERM during a \(outage) outage")
            Self.logger.info("SIGTERM during a \(outage) outage: both exited after \(took)")
        }

        /// The processes whose parent is `parent`, from /proc.
        static func children(of parent: pid_t) -> [pid_t] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { pid_t($0) }.filter { process in
                // /proc/PID/stat: "PID (name) state PPID ..."; the name may hold spaces, so read after ')'.
                guard let stat = try? String(contentsOfFile: "/proc/\(process)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                return fields.count > 1 && pid_t(fields[1]) == parent
            }
        }

        @Test("SIGTERM ends baton serve while it waits for a replies consumer it cannot make")
        func shutdownWhileBinding() async throws {
            let nats = try PrivateNATS()
            defer { nats.remove() }
            let jetStream = try JetStream(try await NATSConnection.connectWhenUp(.init(urlList: nats.url, name: "blocker")))
            for stream in BatonStreams.all { try await jetStream.ensureStream(stream) }
            // Another consumer of every reply: a work queue allows no second one, so the
            // orchestrator's consumer cannot be made and it keeps retrying.
            try await jetStream.ensureConsumer(
                stream: BatonStreams.replies.name, ConsumerConfiguration(durable: "blocker", filterSubject: "baton.reply.>"))
            let database = try await StoreFixture.createDatabase()
            let server = try await Server.start(
                databaseURL: "postgres://\(database.username)@\(database.host):\(database.port)/\(database.database)", natsURL: nats.url,
                workflows: EngineHarnessFiles.workflows)
            defer { if !server.process.hasEnded { server.kill() } }
            try await Task.sleep(for: .seconds(2))
            _ = try await Self.terminate([server.process])
            #expect(server.process.hasEnded, "baton serve was still running \(Self.shutdownBound) after SIGTERM")
        }

        @Test("SIGTERM ends a long poll at once, answering the saga as it is, and the process with it")
        func shutdownDuringLongPoll() async throws {
            let data = FileManager.default.temporaryDirectory.appending(path: "baton-poll-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: data) }
            let port = try LoopbackPort.free()
            let (process, output) = try Self.startDev(data: data, port: port)
            defer { if !process.hasEnded { Glibc.kill(process.processIdentifier, SIGKILL) } }
            try #require(await Self.startupOutput(output).contains("listening on"), "baton dev did not start")
            // No participant runs: the saga waits on its first step, and the poll would wait its minute.
            let id = try await Server(process: process, port: port).submit(amount: 1)
            let poll = Task {
                try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/v1/sagas/\(id)?wait=60s")!)
            }
            try await Task.sleep(for: .seconds(1))
            let took = try await Self.terminate([process])
            #expect(process.hasEnded, "baton dev was still running \(Self.shutdownBound) after SIGTERM with a long poll open")
            let (body, response) = try await poll.value
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(try JSONDecoder().decode(JSONValue.self, from: body).value(at: ["status"]) == "PROCESSING")
            Self.logger.info("SIGTERM with a long poll open: exited after \(took)")
        }

        @Test(
            "baton dev: a busy port is an error at once; its servers end with it, even on SIGKILL; leftovers are stopped on the next start; --fresh starts empty"
        )
        func devRecovers() async throws {
            let data = FileManager.default.temporaryDirectory.appending(path: "baton-dev-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: data) }

            // A port another process listens on.
            let holder = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(holder) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) } }
            listen(holder, 1)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) }
            }
            let busy = Int(UInt16(bigEndian: address.sin_port))
            let started = ContinuousClock.now
            let (refused, refusedOutput) = try Self.startDev(data: data, port: busy, errors: true)
            let said = String(decoding: refusedOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            refused.waitUntilExit()
            #expect(refused.terminationStatus != 0)
            #expect(said.contains("cannot listen on 127.0.0.1:\(busy)") && said.contains("--http 127.0.0.1:\(busy + 1)"), "\(said)")
            #expect(ContinuousClock.now - started < .seconds(2), "said at once")

            // Killed without a chance to stop its servers: its watchdog stops them.
            let port = try LoopbackPort.free()
            let postmasterFile = data.appending(path: "postgres/data/postmaster.pid")
            func postmaster() -> pid_t? {
                let location = try? String(contentsOf: data.appending(path: "postgres/data-location"), encoding: .utf8)
                let file =
                    location.map {
                        URL(fileURLWithPath: $0.trimmingCharacters(in: .whitespacesAndNewlines)).appending(path: "postmaster.pid")
                    }
                    ?? postmasterFile
                return (try? String(contentsOf: file, encoding: .utf8))?.split(separator: "\n").first.flatMap { pid_t($0) }
            }
            func gone(_ pid: pid_t) async -> Bool {
                for _ in 0..<100 {
                    if Glibc.kill(pid, 0) != 0 { return true }
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return false
            }
            let (first, firstOutput) = try Self.startDev(data: data, port: port)
            let firstStart = await Self.startupOutput(firstOutput)
            try #require(firstStart.contains("listening on"), "baton dev did not start: \(firstStart)")
            let firstNATS = try #require(pid_t(try String(contentsOf: data.appending(path: "nats.pid"), encoding: .utf8)))
            let firstPostgres = try #require(postmaster())
            Glibc.kill(first.processIdentifier, SIGKILL)
            // Not waitUntilExit: the servers it left hold what Foundation watches for its exit.
            #expect(first.waitForEnd())
            #expect(await gone(firstNATS), "its nats-server outlived it")
            #expect(await gone(firstPostgres), "its PostgreSQL outlived it")

            // Its watchdog killed too: the next start finds the servers it left, stops them, and serves.
            let (second, secondOutput) = try Self.startDev(data: data, port: port)
            let secondStart = await Self.startupOutput(secondOutput)
            try #require(secondStart.contains("listening on"), "\(secondStart)")
            let staleNATS = try #require(pid_t(try String(contentsOf: data.appending(path: "nats.pid"), encoding: .utf8)))
            let watchdog = Process()
            watchdog.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            watchdog.arguments = ["-KILL", "-f", "/proc/\(second.processIdentifier)/stat"]
            try watchdog.run()
            watchdog.waitUntilExit()
            Glibc.kill(second.processIdentifier, SIGKILL)
            #expect(second.waitForEnd())
            try await Task.sleep(for: .seconds(2))
            #expect(Glibc.kill(staleNATS, 0) == 0, "without its watchdog, its nats-server outlives it")
            let (third, thirdOutput) = try Self.startDev(data: data, port: port)
            defer { if third.isRunning { Glibc.kill(third.processIdentifier, SIGKILL) } }
            let thirdStart = await Self.startupOutput(thirdOutput)
            #expect(thirdStart.contains("listening on"), "\(thirdStart)")
            #expect(thirdStart.contains("stopping the nats-server an earlier run left (pid \(staleNATS))"), "\(thirdStart)")
            #expect(thirdStart.contains("stopping the PostgreSQL an earlier run left"), "\(thirdStart)")
            #expect(thirdStart.contains("console http://127.0.0.1:\(port)/ui"), "\(thirdStart)")
            let server = Server(process: third, port: port)
            let id = try await server.submit(amount: 3)
            Glibc.kill(third.processIdentifier, SIGTERM)
            third.waitUntilExit()
            #expect(third.terminationStatus == 0)

            // The data is kept between runs; --fresh starts empty.
            let (fresh, freshOutput) = try Self.startDev(data: data, port: port, extra: ["--fresh"])
            defer { if fresh.isRunning { Glibc.kill(fresh.processIdentifier, SIGKILL) } }
            let freshStart = await Self.startupOutput(freshOutput)
            #expect(freshStart.contains("--fresh: removing"), "\(freshStart)")
            let (_, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/v1/sagas/\(id)")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 404, "the saga of the earlier run is gone")
            Glibc.kill(fresh.processIdentifier, SIGTERM)
            fresh.waitUntilExit()
        }

        @Test("baton serve with a database that does not answer ends soon, saying what to check")
        func unreachableDatabase() async throws {
            let process = Process()
            process.executableURL = try Self.executable
            process.arguments = [
                "serve", "--database-url", "postgres://baton@127.0.0.1:\(try LoopbackPort.free())/baton", "--nats-url",
                "nats://127.0.0.1:\(try LoopbackPort.free())", "--http", "127.0.0.1:0",
            ]
            process.environment = ProcessInfo.processInfo.environment.merging(["BATON_DATABASE_WAIT": "2s"]) { $1 }
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            let started = ContinuousClock.now
            try process.run()
            let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.waitForEnd())
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(said.contains("Error: the database did not answer within 2.0 seconds (is PostgreSQL running"), "\(said.suffix(600))")
            #expect(!said.contains("ConnectionPoolError"))
        }

        @Test(
            "baton dev starts its own PostgreSQL and NATS, serves, re-registers a changed workflow no saga ran, and stops them on SIGTERM"
        )
        func dev() async throws {
            let data = FileManager.default.temporaryDirectory.appending(path: "baton-dev-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: data) }
            let edited = data.appending(path: "edited")
            try FileManager.default.createDirectory(at: edited, withIntermediateDirectories: true)
            let file = edited.appending(path: "dev-edit.yaml")
            let source = EngineHarness.workflowSource.replacingOccurrences(of: "name: e2e-order", with: "name: dev-edit")
            try source.write(to: file, atomically: true, encoding: .utf8)
            let port = try LoopbackPort.free()
            let log = data.appending(path: "dev.log")
            let (process, output) = try Self.startDev(data: data, port: port, log: log, extra: ["--workflows", edited.path])
            let line = await Self.listeningLine(output)
            #expect(line.contains("listening on http://127.0.0.1:\(port)"), "baton dev did not start: \(line)")

            // Saved with a new description while it runs: no saga ran it, so it takes the change.
            func description() async throws -> JSONValue? {
                let (body, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/v1/workflows/dev-edit")!)
                return try JSONDecoder().decode(JSONValue.self, from: body).value(at: ["versions", "0", "description"])
            }
            #expect(try await description() == "")
            let described = source.replacingOccurrences(of: "version: 1", with: "version: 1\ndescription: edited while running")
            try described.write(to: file, atomically: true, encoding: .utf8)
            var seen: JSONValue? = nil
            for _ in 0..<100 where seen != "edited while running" {
                try await Task.sleep(for: .milliseconds(100))
                seen = try await description()
            }
            #expect(seen == "edited while running")
            // Once a saga ran it, a change is refused and the log says what to do.
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/sagas")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(#"{"workflow":"dev-edit","input":{"amount":1}}"#.utf8)
            #expect((try await URLSession.shared.data(for: request).1 as? HTTPURLResponse)?.statusCode == 202)
            try described.replacingOccurrences(of: "edited while running", with: "edited again").write(
                to: file, atomically: true, encoding: .utf8)
            var logged = ""
            for _ in 0..<100 where !logged.contains("register the change as version 2") {
                try await Task.sleep(for: .milliseconds(100))
                logged = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            }
            #expect(logged.contains("register the change as version 2"), "\(logged.suffix(2000))")
            #expect(try await description() == "edited while running")

            let (body, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/readyz")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(try JSONDecoder().decode(JSONValue.self, from: body).value(at: ["checks", "postgres"]) == true)
            let server = Server(process: process, port: port)
            let id = try await server.submit(amount: 1)
            #expect(!id.isEmpty)
            // The web console is served by the same process, and shows the saga; an open page's
            // event stream does not hold up the shutdown below.
            let (page, pageResponse) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/ui/sagas/\(id)")!)
            #expect((pageResponse as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: page, as: UTF8.self).contains("<h1>Saga <span class=\"mono\">\(id)</span></h1>"))
            let events = Task { _ = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/ui/events?saga=\(id)")!) }
            defer { events.cancel() }
            try await Task.sleep(for: .milliseconds(300))

            Glibc.kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            // Each saved version was simulated, with the command that shows the stories.
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(printed.contains("baton dev: dev-edit v1 simulated (300 runs):"), "\(printed)")
            #expect(printed.contains("the stories: baton workflows simulate \(file.path) --runs 300 --seed "), "\(printed)")
            // PostgreSQL shut down cleanly: it removes its pid file.
            let location = try? String(contentsOf: data.appending(path: "postgres/data-location"), encoding: .utf8)
            let cluster = location.map { URL(fileURLWithPath: $0) } ?? data.appending(path: "postgres/data")
            #expect(!FileManager.default.fileExists(atPath: cluster.appending(path: "postmaster.pid").path))
        }
    }
}

/// The e2e workflow as a file, for processes that read workflows from disk.
enum EngineHarnessFiles {
    static let workflows: URL = {
        let directory = FileManager.default.temporaryDirectory.appending(path: "baton-workflows-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? EngineHarness.workflowSource.write(to: directory.appending(path: "e2e-order.yaml"), atomically: true, encoding: .utf8)
        return directory
    }()
}
