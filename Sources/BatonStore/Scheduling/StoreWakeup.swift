import Foundation
import PostgresNIO

/// A wake-up sent on the `baton_wakeup` channel (`LISTEN`/`NOTIFY`) when a transaction that queued
/// work commits, so that the outbox relay and the scheduler sleep instead of polling.
///
/// PostgreSQL delivers a notification only after its transaction commits, so a woken service always
/// finds the rows that caused it.
public enum StoreWakeup: Sendable, Hashable {
    /// New commands are in the outbox.
    case outbox
    /// A timer was scheduled; `due` is the soonest one the transaction scheduled. A scheduler that
    /// sleeps past `due` should wake earlier.
    case timer(due: Date)

    public static let channel = "baton_wakeup"

    /// How far ahead a scheduled timer is announced. A scheduler never sleeps longer than this
    /// (``TimerScheduler``'s safety poll), so it looks for a timer due later than this before the
    /// timer is due, woken or not. Most transitions schedule a step timeout at least this far
    /// out; not announcing them spares PostgreSQL a notification per step and the schedulers a
    /// wake-up.
    public static let timerHorizon: Duration = .seconds(30)

    /// The notification payload: `outbox`, or `timer <microseconds since the Unix epoch>`.
    public var payload: String {
        switch self {
        case .outbox: "outbox"
        case .timer(let due): "timer \(due.epochMicroseconds)"
        }
    }

    /// Reads a payload; `nil` for one this version does not know (a newer replica's), which a
    /// listener treats as a reason to look anyway.
    public init?(payload: String) {
        if payload == "outbox" {
            self = .outbox
        } else if payload.hasPrefix("timer "), let microseconds = Int64(payload.dropFirst("timer ".count)) {
            self = .timer(due: Date(epochMicroseconds: microseconds))
        } else {
            return nil
        }
    }
}

extension SagaStore {
    /// Listens on ``StoreWakeup/channel`` for as long as `body` runs, on a connection of its own.
    ///
    /// Notifications sent while no one listens are lost, and so are those sent while the connection
    /// is down: after (re)starting to listen, a service looks for due work once before it waits.
    /// - Parameter body: Receives each wake-up (`nil` for a payload this version cannot read).
    public func withWakeups<Result: Sendable>(
        _ body: (any AsyncSequence<StoreWakeup?, any Error>) async throws -> Result
    ) async throws -> Result {
        try await client.withConnection { connection in
            // LISTEN is a statement too: never written to a closed connection (``PostgresConnection/run(_:logger:)``).
            guard !connection.isClosed else { throw DatabaseConnectionLost() }
            return try await connection.listen(on: StoreWakeup.channel) { notifications in
                try await body(notifications.map { StoreWakeup(payload: $0.payload) })
            }
        }
    }
}
