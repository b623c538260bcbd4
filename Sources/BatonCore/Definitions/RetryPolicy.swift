/// How often and how soon a step (or a compensation) is tried again after a transient failure:
/// a `retry` reply, or an attempt that timed out.
public struct RetryPolicy: Sendable, Hashable, Codable {
    public enum Backoff: String, Sendable, Hashable, Codable, CaseIterable {
        /// Every delay is `initial`.
        case fixed
        /// Delays double from `initial` up to `maxDelay`.
        case exponential
    }

    /// Attempts in all, the first included; 1 means no retry.
    public var maxAttempts: Int
    public var backoff: Backoff
    public var initial: SagaDuration
    public var maxDelay: SagaDuration
    /// The fraction (0…1) of each delay that is randomised away, so retries of many sagas spread out
    /// instead of arriving together. A delay is drawn from `[delay × (1 − jitter), delay]`: jitter
    /// only shortens, so `maxDelay` stays an upper bound.
    public var jitter: Double

    public init(
        maxAttempts: Int,
        backoff: Backoff = .exponential,
        initial: SagaDuration = .seconds(1),
        maxDelay: SagaDuration = .seconds(30),
        jitter: Double = 0.2
    ) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.initial = initial
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The policy of a step that sets none: 3 attempts, exponential from 1 s to 30 s, 20% jitter.
    public static let `default` = RetryPolicy(maxAttempts: 3)
    /// The policy of a compensation that sets none: compensations matter more than actions (they
    /// put money back), so they get a larger budget: 10 attempts, exponential from 1 s to 1 min.
    public static let defaultCompensation = RetryPolicy(maxAttempts: 10, maxDelay: .seconds(60))
    /// One attempt and no retry: a signal step's (a wait is not retried; an operator can wait again).
    public static let once = RetryPolicy(maxAttempts: 1)

    /// The delay before the attempt that follows `failedAttempt`.
    /// - Parameters:
    ///   - failedAttempt: The attempt that just failed, counted from 1 within the current budget.
    ///   - random: The source of jitter; pass a seeded generator for reproducible delays.
    /// - Returns: A delay between `initial × (1 − jitter)` and `maxDelay`.
    public func delay(after failedAttempt: Int, using random: inout some RandomNumberGenerator) -> SagaDuration {
        let base: Int64
        switch backoff {
        case .fixed:
            base = initial.milliseconds
        case .exponential:
            let doublings = min(max(failedAttempt - 1, 0), 40)
            let (scaled, overflow) = initial.milliseconds.multipliedReportingOverflow(by: Int64(1) << doublings)
            base = overflow ? maxDelay.milliseconds : scaled
        }
        let capped = Double(min(base, maxDelay.milliseconds))
        let spread = min(max(jitter, 0), 1)
        let fraction = spread > 0 ? Double.random(in: 0..<spread, using: &random) : 0
        return SagaDuration(milliseconds: Int64((capped * (1 - fraction)).rounded()))
    }

    enum CodingKeys: String, CodingKey {
        case maxAttempts = "max_attempts"
        case backoff, initial
        case maxDelay = "max_delay"
        case jitter
    }
}
