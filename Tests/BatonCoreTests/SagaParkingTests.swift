import BatonCore
import Foundation
import Testing

@Suite("Parking a saga whose events cannot be applied")
struct SagaParkingTests {
    @Test("a saga in flight is SUSPENDED with the reason, and every timer slot is cancelled")
    func parksInFlight() {
        var harness = SagaHarness(Workflows.transfer)
        harness.handle(.start)
        var saga = harness.saga
        let transition = saga.park(because: "definition mismatch", event: "reply 'succeeded' to debit", now: harness.now)
        #expect(transition.outcome == .applied)
        #expect(saga.status == .suspended)
        #expect(saga.suspensionReason == "reply 'succeeded' to debit cannot be applied: definition mismatch")
        #expect(saga.steps.allSatisfy { $0.replyDeadline == nil && $0.retryAt == nil })
        let cancelled = transition.effects.compactMap { if case .cancelTimer(let key) = $0 { key } else { nil } }
        #expect(cancelled.count == 1 + Workflows.transfer.steps.count * 4)
        #expect(transition.history.last?.kind == .sagaSuspended)
    }

    @Test("a finished saga stays finished: the event is recorded as ignored")
    func finishedStaysFinished() {
        var harness = SagaHarness(Workflows.transfer)
        harness.handle(.start)
        harness.handle(.cancel(reason: "stop"))
        for _ in 0..<10 where harness.status == .compensating { harness.reply(.succeeded(output: [:])) }
        #expect(harness.status.isTerminal)
        var saga = harness.saga
        let status = saga.status
        let transition = saga.park(because: "definition mismatch", event: "timer", now: harness.now)
        #expect(saga.status == status)
        #expect(transition.history.last?.kind == .ignored)
    }
}
