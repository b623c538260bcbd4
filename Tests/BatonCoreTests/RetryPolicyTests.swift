import BatonCore
import Testing

@Suite("Retry policy and durations")
struct RetryPolicyTests {
    @Test("exponential backoff doubles from initial and stops at max_delay")
    func exponential() {
        let policy = RetryPolicy(maxAttempts: 10, backoff: .exponential, initial: .seconds(1), maxDelay: .seconds(10), jitter: 0)
        var random = SeededRandomNumberGenerator(seed: 1)
        let delays = (1...6).map { policy.delay(after: $0, using: &random).milliseconds }
        #expect(delays == [1000, 2000, 4000, 8000, 10000, 10000])
    }

    @Test("fixed backoff repeats initial")
    func fixed() {
        let policy = RetryPolicy(maxAttempts: 3, backoff: .fixed, initial: .seconds(2), maxDelay: .seconds(2), jitter: 0)
        var random = SeededRandomNumberGenerator(seed: 1)
        #expect((1...3).map { policy.delay(after: $0, using: &random) } == Array(repeating: .seconds(2), count: 3))
    }

    @Test("jitter shortens each delay by at most its fraction, and the same seed gives the same delays")
    func jitter() {
        let policy = RetryPolicy(maxAttempts: 5, backoff: .exponential, initial: .seconds(1), maxDelay: .seconds(60), jitter: 0.5)
        var first = SeededRandomNumberGenerator(seed: 42)
        var second = SeededRandomNumberGenerator(seed: 42)
        let a = (1...50).map { policy.delay(after: $0 % 5 + 1, using: &first) }
        let b = (1...50).map { policy.delay(after: $0 % 5 + 1, using: &second) }
        #expect(a == b)
        for (index, delay) in a.enumerated() {
            let base = min(Int64(1000) << Int64((index + 1) % 5), 60_000)
            #expect(delay.milliseconds <= base && delay.milliseconds >= base / 2)
        }
        #expect(Set(a).count > 5, "jitter should spread delays")
    }

    @Test("huge attempt counts do not overflow")
    func noOverflow() {
        let policy = RetryPolicy(maxAttempts: 1000, backoff: .exponential, initial: .seconds(1), maxDelay: .minutes(5), jitter: 0)
        var random = SeededRandomNumberGenerator(seed: 0)
        #expect(policy.delay(after: 900, using: &random) == .minutes(5))
    }

    @Test(
        "durations parse and print",
        arguments: [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("1.5s", 1500), ("2d", 172_800_000)]
    )
    func durations(text: String, milliseconds: Int64) throws {
        let duration = try #require(SagaDuration(parsing: text))
        #expect(duration.milliseconds == milliseconds)
        #expect(SagaDuration(parsing: duration.description) == duration)
    }

    @Test("non-durations are rejected", arguments: ["", "10", "s", "5 m", "1x", "-1s", "1e3s"])
    func notDurations(text: String) {
        #expect(SagaDuration(parsing: text) == nil)
    }
}
