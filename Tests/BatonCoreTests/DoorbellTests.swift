import Testing

@testable import BatonCore

@Suite("Doorbell")
struct DoorbellTests {
    @Test("a ring while nobody waits is remembered, and wakes the next wait")
    func remembered() async {
        let doorbell = Doorbell()
        doorbell.ring()
        #expect(doorbell.isRung)
        await doorbell.wait(atMost: .seconds(60))
        #expect(!doorbell.isRung)
    }

    @Test("a wait woken by a ring leaves no ring behind: its alarm, cancelled, does not ring")
    func noRingLeftBehind() async throws {
        let doorbell = Doorbell()
        for _ in 0..<20 {
            Task { doorbell.ring() }
            await doorbell.wait(atMost: .seconds(60))
            // Give the cancelled alarm task time to run to its end.
            try await Task.sleep(for: .milliseconds(20))
            #expect(!doorbell.isRung, "a cancelled alarm rang: the next wait would return at once")
        }
    }

    @Test("a wait with nothing ringing returns when its limit passes")
    func limit() async {
        let doorbell = Doorbell()
        await doorbell.wait(atMost: .milliseconds(10))
        #expect(!doorbell.isRung)
    }

    @Test("a wait without a limit returns on a ring, and when its task is cancelled")
    func unlimited() async {
        let doorbell = Doorbell()
        Task { doorbell.ring() }
        await doorbell.wait()
        #expect(!doorbell.isRung)

        let waiting = Task { await doorbell.wait() }
        waiting.cancel()
        await waiting.value
    }
}
