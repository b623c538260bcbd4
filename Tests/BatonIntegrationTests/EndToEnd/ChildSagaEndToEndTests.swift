import BatonCore
import BatonEngine
import BatonStore
import BatonWorker
import Foundation
import Testing

extension EndToEndSuites {
    /// Child sagas run by the real engine through real workers: `e2e-parent` starts `e2e-child`.
    @Suite("Child sagas end to end", .serialized)
    struct ChildSagaEndToEndTests {
        @Test("a child saga runs to its end; its output is the step's, and parent and child link to each other")
        func childSaga() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { _ in ["reservation": "r-5"] }
                harness.on("hold") { _ in ["hold": "h-5"] }
                let verified = Collector<JSONValue>()
                harness.on("verify") { context in
                    await verified.append(contentsOf: [context.payload])
                    return ["ok": true]
                }
                let parent = try await harness.runSaga(workflow: "e2e-parent")
                #expect(parent.saga.status == .completed)
                let children = try await harness.store.children(of: parent.saga.id)
                #expect(children.map(\.step) == ["order"] && children.map(\.status) == [.completed])
                let child = try #require(try await harness.store.saga(id: children[0].id))
                #expect(child.saga.parent == SagaParent(sagaID: parent.saga.id, step: "order", depth: 1))
                #expect(child.saga.correlationID == parent.saga.correlationID)
                #expect(parent.saga.steps[1].output?.value(at: ["saga_id"]) == .string(child.saga.id))
                #expect(await verified.values == [["reservation": "r-5"]])
            }
        }

        @Test("compensating a child step undoes its completed child, which ends CANCELLED; the parent ends FAILED")
        func childCompensated() async throws {
            try await EngineHarness.run { harness in
                harness.on("reserve") { _ in ["reservation": "r-6"] }
                harness.on("hold") { _ in ["hold": "h-6"] }
                harness.on("verify") { _ in throw BusinessFailure(code: "mismatch", message: "the order does not match") }
                let undone = Collector<String>()
                harness.on("release") { context in
                    await undone.append(contentsOf: ["release \(context.payload.value(at: ["reservation"])?.stringValue ?? "-")"])
                    return .null
                }
                harness.on("unhold") { context in
                    await undone.append(contentsOf: ["unhold \(context.payload.value(at: ["hold"])?.stringValue ?? "-")"])
                    return .null
                }
                let parent = try await harness.runSaga(workflow: "e2e-parent")
                #expect(parent.saga.status == .failed)
                #expect(parent.saga.steps.map(\.status) == [.compensated, .compensated, .failed])
                #expect(await undone.values == ["release r-6", "unhold h-6"])
                let child = try #require(try await harness.store.children(of: parent.saga.id).first)
                #expect(child.status == .cancelled)
                let kinds = try await harness.history(child.id).map(\.kind)
                #expect(kinds.contains(.sagaCompleted) && kinds.last == .sagaCancelled)
            }
        }

        @Test("cancelling the parent cancels its running child; a child of a workflow that does not exist fails the step")
        func childCancelledAndRefused() async throws {
            try await EngineHarness.run { harness in
                harness.on("hold") { _ in ["hold": "h-7"] }
                harness.on("reserve") { _ in
                    try await Task.sleep(for: .milliseconds(1500))
                    return ["reservation": "r-7"]
                }
                let id = try await harness.runner.submit(workflow: "e2e-parent", input: ["amount": 1]).record.saga.id
                _ = try await harness.wait(for: id) { _ in harness.callCount("reserve") > 0 }
                _ = try await harness.runner.cancel(id: id, reason: "customer asked", actor: "ops")
                let cancelled = try await harness.waitUntilSettled(id)
                #expect(cancelled.saga.status == .cancelled)
                let child = try #require(try await harness.store.children(of: id).first)
                let settledChild = try await harness.waitUntilSettled(child.id)
                #expect(settledChild.saga.status == .cancelled)
                #expect(settledChild.saga.cancellation?.reason.contains("parent saga \(id)") == true)
                #expect(cancelled.saga.steps[1].status == .compensated)

                let orphan = try await harness.runSaga(workflow: "e2e-orphan")
                #expect(orphan.saga.status == .failed)
                #expect(orphan.saga.steps[0].error?.code == "child_refused")
                #expect(orphan.saga.steps[0].error?.message.contains("no workflow named 'e2e-missing'") == true)
            }
        }
    }
}
