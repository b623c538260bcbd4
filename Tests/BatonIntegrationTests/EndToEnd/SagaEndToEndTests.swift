import BatonCore
import BatonEngine
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Synchronization
import Testing

extension EndToEndSuites {
    /// Sagas run by the real engine services through real workers over JetStream. One at a time: their
    /// step timeouts are real seconds, and each brings up a whole system.
    @Suite("Sagas end to end", .serialized)
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

        @Test("a parallel group runs its branches at once and joins; the pivot reads both branches' outputs")
        func parallelBranches() async throws {
            try await EngineHarness.run { harness in
                // Each branch's first step waits until the other has been called: that both see the
                // other's call shows they ran at the same time.
                let overlapped = Collector<String>()
                harness.on("reserve") { _ in
                    if try await harness.waitForCall("hold") { await overlapped.append(contentsOf: ["reserve saw hold"]) }
                    return ["reservation": "r-1"]
                }
                harness.on("hold") { _ in
                    if try await harness.waitForCall("reserve") { await overlapped.append(contentsOf: ["hold saw reserve"]) }
                    return ["hold": "h-1"]
                }
                let charged = Collector<JSONValue>()
                harness.on("charge") { context in
                    await charged.append(contentsOf: [context.payload])
                    return ["ok": true]
                }
                let record = try await harness.runSaga(workflow: "e2e-parallel")
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps.map(\.status) == [.succeeded, .succeeded, .succeeded, .succeeded])
                #expect(await charged.values == [["reservation": "r-1", "hold": "h-1"]])
                #expect(Set(await overlapped.values) == ["reserve saw hold", "hold saw reserve"])
                let kinds = try await harness.history(record.saga.id).map(\.kind)
                #expect(kinds.filter { $0 == .parallelStarted || $0 == .parallelJoined } == [.parallelStarted, .parallelJoined])
            }
        }

        @Test("when a branch fails, the steps of every branch that succeeded are compensated once, in reverse order of completion")
        func parallelFailure() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { _ in ["reservation": "r-1"] }
                // The hold completes after the reservation: it is undone first.
                harness.on("hold") { context in
                    try await harness.waitForStep("stock", of: context.command.sagaID, toBe: .succeeded)
                    return ["hold": "h-1"]
                }
                harness.on("verify") { _ in throw BusinessFailure(code: "hold_invalid", message: "the hold was refused") }
                let undone = Collector<String>()
                harness.on("unhold") { context in
                    await undone.append(contentsOf: ["unhold \(context.payload.value(at: ["hold"])?.stringValue ?? "-")"])
                    return .null
                }
                harness.on("release") { context in
                    await undone.append(contentsOf: ["release \(context.payload.value(at: ["reservation"])?.stringValue ?? "-")"])
                    return .null
                }
                let record = try await harness.runSaga(workflow: "e2e-parallel")
                #expect(record.saga.status == .failed)
                #expect(record.saga.steps.map(\.status) == [.compensated, .compensated, .failed, .pending])
                #expect(record.saga.steps[0].completionOrder == 1 && record.saga.steps[1].completionOrder == 2)
                #expect(await undone.values == ["unhold h-1", "release r-1"])
                #expect(harness.callCount("charge") == 0)
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
                    // The first attempt answers too late (the step's timeout is 3s).
                    if context.command.attempt == 1 { try await Task.sleep(for: .milliseconds(4000)) }
                    return ["reservation": .string("r-\(context.command.attempt)")]
                }
                let record = try await harness.runSaga()
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[0].attempt == 2)
                #expect(record.saga.steps[0].output == ["reservation": "r-2"])
                // The stale reply is recorded as ignored once it arrives (about a second after the
                // saga completes; a loaded machine may take longer).
                var history = try await harness.history(record.saga.id)
                for _ in 0..<100 where !history.contains(where: { $0.kind == .ignored && $0.attempt == 1 }) {
                    try await Task.sleep(for: .milliseconds(100))
                    history = try await harness.history(record.saga.id)
                }
                #expect(history.contains { $0.kind == .stepTimedOut })
                #expect(history.contains { $0.kind == .ignored && $0.attempt == 1 })
            }
        }

        @Test("retry_after is honoured before the next attempt")
        func retryAfter() async throws {
            try await EngineHarness.run { harness in
                let sent = Collector<Date>()
                harness.on("reserve") { context in
                    await sent.append(contentsOf: [Date()])
                    if context.command.attempt == 1 { throw RetryLater(after: SagaDuration(milliseconds: 800), message: "warming up") }
                    return ["reservation": "r"]
                }
                let record = try await harness.runSaga()
                #expect(record.saga.status == .completed)
                let times = await sent.values
                #expect(times.count == 2)
                if times.count == 2 { #expect(times[1].timeIntervalSince(times[0]) >= 0.8) }
            }
        }

        @Test("in_progress heartbeats keep a slow step from timing out")
        func heartbeatsExtendTheDeadline() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { _ in
                    try await Task.sleep(for: .milliseconds(4500))  // the step's timeout is 3s
                    return ["reservation": "slow"]
                }
                let record = try await harness.runSaga()
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[0].attempt == 1)
                #expect(try await harness.history(record.saga.id).contains { $0.kind == .heartbeat })
            }
        }

        @Test("the saga deadline compensates what was done")
        func sagaDeadline() async throws {
            try await EngineHarness.run(heartbeats: true) { harness in
                harness.on("reserve") { _ in ["reservation": "r-d"] }
                harness.on("charge") { _ in
                    try await Task.sleep(for: .milliseconds(100))
                    throw RetryLater(after: SagaDuration(milliseconds: 3000), message: "processor busy")
                }
                let record = try await harness.runSaga(workflow: "e2e-deadline")
                #expect(record.saga.status == .failed)
                #expect(record.saga.steps[0].status == .compensated)
                #expect(try await harness.history(record.saga.id).contains { $0.kind == .deadlineReached })
            }
        }

        @Test("cancel before the pivot compensates and ends CANCELLED with the reason and the caller; after the pivot it is refused")
        func cancel() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { context in
                    if context.payload.value(at: ["amount"]) == 1 { try await Task.sleep(for: .milliseconds(600)) }
                    return ["reservation": "r-c"]
                }
                harness.on("send") { _ in
                    try await Task.sleep(for: .milliseconds(600))
                    return ["sent": true]
                }
                let early = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 1])
                let (_, refusedOrApplied) = try await harness.runner.cancel(
                    id: early.record.saga.id, reason: "customer changed their mind", actor: "support-desk")
                #expect(refusedOrApplied == .applied)
                let cancelled = try await harness.waitUntilSettled(early.record.saga.id)
                #expect(cancelled.saga.status == .cancelled)
                #expect(cancelled.saga.cancellation?.reason == "customer changed their mind")
                #expect(cancelled.saga.cancellation?.requestedBy == "support-desk")
                #expect(cancelled.saga.steps[0].status == .compensated)

                let late = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 2])
                _ = try await harness.wait(for: late.record.saga.id) { $0.saga.steps[1].status == .succeeded }
                let (_, outcome) = try await harness.runner.cancel(id: late.record.saga.id, reason: "too late")
                guard case .rejected = outcome else {
                    Issue.record("cancel after the pivot must be refused, got \(outcome)")
                    return
                }
                #expect(try await harness.waitUntilSettled(late.record.saga.id).saga.status == .completed)
            }
        }

        @Test("a step after the pivot that keeps failing is retried forward, suspends, and an operator resolves it")
        func suspendedAfterPivot() async throws {
            try await EngineHarness.run { harness in
                harness.on("send") { _ in throw BusinessFailure(code: "mailbox_full", message: "cannot deliver") }
                let record = try await harness.runSaga()
                #expect(record.saga.status == .suspended)
                #expect(harness.callCount("send") == 2)
                #expect(harness.callCount("release") == 0)
                let (resolved, outcome) = try await harness.runner.act(on: record.saga.id, .resolve(reason: "sent by hand"))
                #expect(outcome == .applied)
                #expect(resolved.saga.status == .completed)
                #expect(try await harness.history(record.saga.id).contains { $0.kind == .operatorAction })
            }
        }

        @Test("a submission repeated with its idempotency key starts one saga; another body with the key is refused")
        func idempotentSubmission() async throws {
            try await EngineHarness.run { harness in
                let first = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 5], idempotencyKey: "order-1")
                let again = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 5], idempotencyKey: "order-1")
                #expect(again.record.saga.id == first.record.saga.id)
                await #expect(throws: SagaStoreError.self) {
                    try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 6], idempotencyKey: "order-1")
                }
                await #expect(throws: SagaRunner.SubmissionError.invalidInput(["input.amount is required"])) {
                    try await harness.runner.submit(workflow: "e2e-order", input: [:])
                }
                #expect(try await harness.waitUntilSettled(first.record.saga.id).saga.status == .completed)
                #expect(harness.callCount("reserve") == 1)
            }
        }

        @Test("a NATS outage delays sagas and loses nothing: commands wait in the outbox and go out when it returns")
        func natsOutage() async throws {
            try await EngineHarness.run { harness in
                harness.nats.stop()
                let submitted = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 3])
                try await Task.sleep(for: .milliseconds(1500))
                #expect(try await harness.store.outboxBacklog().count >= 1)
                #expect(try await harness.store.saga(id: submitted.record.saga.id)?.saga.status == .processing)
                try harness.nats.start()
                let record = try await harness.waitUntilSettled(submitted.record.saga.id)
                #expect(record.saga.status == .completed)
                #expect(try await harness.store.outboxBacklog().count == 0)
                // The outage outlasted the first attempt's timeout: it was retried, and its late answer ignored.
                #expect(try await harness.history(record.saga.id).contains { $0.kind == .sagaCompleted })
            }
        }

        @Test(
            "the engine's NATS connection closed for good: its client connects again and the engine follows, publishing and consuming on the new one"
        )
        func engineFollowsAReplacedConnection() async throws {
            try await EngineHarness.run { harness in
                #expect(try await harness.runSaga().saga.status == .completed)
                let first = try #require(harness.natsClient.currentConnection)
                first.close()
                var second = try await harness.natsClient.connection()
                for _ in 0..<200 where second === first {
                    try await Task.sleep(for: .milliseconds(20))
                    second = try await harness.natsClient.connection()
                }
                #expect(second !== first, "the client did not replace its closed connection")
                // The dispatcher publishes this saga's commands, and the reply consumer applies
                // their replies, only if both have left the closed connection behind.
                let record = try await harness.runSaga(limit: .seconds(20))
                #expect(record.saga.status == .completed)
                #expect(try await harness.history(record.saga.id).filter { $0.kind == .stepTimedOut }.isEmpty)
            }
        }

        @Test("a malformed reply goes to the dead letters and the consumer keeps applying good ones")
        func malformedReply() async throws {
            try await EngineHarness.run { harness in
                let connection = try await NATSConnection.connect(.init(urlList: harness.nats.url, name: "rogue-participant"))
                let jetStream = try JetStream(connection)
                try await jetStream.publish(
                    OutgoingMessage(subject: "baton.reply.inventory.reserve", headers: [("Baton-Protocol", "1")], payload: Data("{}".utf8)))
                let record = try await harness.runSaga()
                #expect(record.saga.status == .completed)
                let letters = try await harness.deadLetters(waitingUpTo: .seconds(3))
                #expect(letters.map(\.subject) == ["baton.dlq.reply.inventory.reserve"])
                #expect(letters.first?.header("Baton-Dead-Letter-Reason") == "header Baton-Saga-Id is missing")
                #expect(letters.first?.header("Baton-Dead-Letter-Source") == "orchestrator")
            }
        }

        @Test("a saga whose events can never be applied is parked SUSPENDED with the reason; its timers stop; others flow")
        func poisonSagaIsParked() async throws {
            try await EngineHarness.run(heartbeats: false) { harness in
                // The poisoned saga's reserve never answers, so its step timeout is what fires.
                harness.on("reserve") { context in
                    if context.command.payload.value(at: ["amount"]) == 1 { try await Task.sleep(for: .seconds(60)) }
                    return ["reservation": "r-1"]
                }
                let poisoned = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 1]).record.saga.id
                _ = try await harness.wait(for: poisoned) { $0.saga.steps[0].commandSentAt != nil }
                // Injected for real: the stored saga no longer matches its definition (as a bad
                // migration or a hand edit would leave it), so the state machine refuses every event.
                try await harness.store.client.query(
                    "UPDATE baton.saga_steps SET name = 'renamed' WHERE saga_id = \(UUID(uuidString: poisoned)!) AND position = 2",
                    logger: EngineHarness.logger)
                let healthy = try await harness.runSaga(input: ["amount": 5])
                #expect(healthy.saga.status == .completed)

                let parked = try await harness.wait(for: poisoned) { $0.saga.status == .suspended }
                #expect(parked.saga.status == .suspended)
                #expect(parked.saga.suspensionReason?.contains("cannot be applied") == true)
                #expect(parked.saga.suspensionReason?.contains("renamed") == true)
                let history = try await harness.history(poisoned)
                #expect(history.last?.kind == .sagaSuspended)
                #expect(history.last?.detail.hasPrefix("parked: timer step_timeout for reserve attempt 1 cannot be applied") == true)
                // No timer of it is left to fire again and again.
                #expect(try await harness.store.timers(sagaID: poisoned).isEmpty)
                // And the engine keeps running sagas.
                #expect(try await harness.runSaga(input: ["amount": 6]).saga.status == .completed)
            }
        }

        @Test("a reply on another participant's subject goes to the dead letters and changes nothing")
        func misaddressedReply() async throws {
            try await EngineHarness.run(heartbeats: false) { harness in
                let forged = Mutex<CommandMessage?>(nil)
                harness.on("reserve") { context in
                    forged.withLock { $0 = context.command }
                    try await Task.sleep(for: .seconds(60))
                    return [:]
                }
                let id = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 3]).record.saga.id
                _ = try await harness.wait(for: id) { _ in forged.withLock { $0 } != nil }
                var reply = ReplyMessage(
                    answering: try #require(forged.withLock { $0 }), status: .succeeded(output: ["reservation": "stolen"]))
                // Right headers, wrong subject: the payments participant answering for the inventory.
                reply.participant = "payments"
                reply.action = "charge"
                let connection = try await NATSConnection.connect(.init(urlList: harness.nats.url, name: "rogue-participant"))
                let jetStream = try JetStream(connection)
                try await jetStream.publish(reply.outgoing)
                let letters = try await harness.deadLetters(waitingUpTo: .seconds(5))
                #expect(letters.map(\.subject) == ["baton.dlq.reply.payments.charge"])
                #expect(
                    letters.first?.header("Baton-Dead-Letter-Reason")?.contains(
                        "step 'reserve' (action) is answered on baton.reply.inventory.reserve") == true)
                let saga = try #require(try await harness.store.saga(id: id))
                #expect(saga.saga.steps[0].status == .running)
                #expect(saga.saga.steps[0].output == nil)
            }
        }

        @Test("an oversized reply goes to the dead letters with the size and the limit; the step is retried")
        func oversizedReply() async throws {
            try await EngineHarness.run { harness in
                let calls = Mutex(0)
                harness.on("reserve") { _ in
                    // The first answer carries 300 KB; the retry a small one.
                    let first = calls.withLock { count in
                        count += 1
                        return count == 1
                    }
                    return first ? ["blob": .string(String(repeating: "x", count: 300_000))] : ["reservation": "r-small"]
                }
                let record = try await harness.runSaga(input: ["amount": 4])
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[0].output == ["reservation": "r-small"])
                let letters = try await harness.deadLetters(waitingUpTo: .seconds(3))
                #expect(letters.map(\.subject) == ["baton.dlq.reply.inventory.reserve"])
                #expect(letters.first?.header("Baton-Dead-Letter-Reason")?.contains("limited to 262144 bytes") == true)
            }
        }

        @Test("a step whose every attempt times out is compensated too, since it may have taken effect")
        func timeoutsExhausted() async throws {
            try await EngineHarness.run(heartbeats: false) { harness in
                harness.on("reserve") { _ in
                    try await Task.sleep(for: .seconds(60))  // never answers in time
                    return ["reservation": "too late"]
                }
                let record = try await harness.runSaga(limit: .seconds(40))
                #expect(record.saga.status == .failed)
                #expect(record.saga.steps[0].status == .compensated)
                #expect(record.saga.steps[0].attempt == 3)
                #expect(harness.callCount("release") == 1)
                #expect(harness.callCount("charge") == 0)
            }
        }

        @Test("a duplicate reply (same attempt, new message) is recorded and ignored")
        func duplicateReply() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { _ in ["reservation": "r-1"] }
                harness.on("charge") { _ in
                    try await Task.sleep(for: .milliseconds(800))
                    return ["charged": true]
                }
                let submitted = try await harness.runner.submit(workflow: "e2e-order", input: ["amount": 4])
                let id = submitted.record.saga.id
                _ = try await harness.wait(for: id) { $0.saga.steps[0].status == .succeeded }

                let connection = try await NATSConnection.connect(.init(urlList: harness.nats.url, name: "echoing-participant"))
                let command = CommandMessage(
                    StepCommand(
                        sagaID: id, step: "reserve", participant: "inventory", action: "reserve", direction: .action, attempt: 1,
                        idempotencyKey: StepCommand.idempotencyKey(sagaID: id, step: "reserve", direction: .action), deadline: .now,
                        payload: [:], correlationID: nil))
                var duplicate = ReplyMessage(answering: command, status: .succeeded(output: ["reservation": "r-2"])).outgoing
                duplicate.messageID = "resent-by-a-confused-participant"
                try await JetStream(connection).publish(duplicate)

                let record = try await harness.waitUntilSettled(id)
                #expect(record.saga.status == .completed)
                #expect(record.saga.steps[0].output == ["reservation": "r-1"])
                let ignored = try await harness.history(id).filter { $0.kind == .ignored }
                #expect(ignored.count == 1)
                #expect(ignored.first?.detail.contains("duplicate") == true)
            }
        }
    }
}
