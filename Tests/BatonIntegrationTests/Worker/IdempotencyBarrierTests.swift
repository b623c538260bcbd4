import BatonCore
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO
import Testing

/// The idempotency barrier against the real PostgreSQL, as a ledger participant would use it.
@Suite("Idempotency barrier")
struct IdempotencyBarrierTests {
    static let logger = Logger(label: "baton.test.barrier")

    /// A participant database with the barrier and a ledger table the handlers write to.
    static func withBarrier(_ body: (IdempotencyBarrier, PostgresClient) async throws -> Void) async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let barrier = IdempotencyBarrier(client: client, logger: logger)
            try await barrier.prepare()
            try await barrier.prepare()
            try await client.query("CREATE TABLE entries (saga_id text, step text, direction text, amount bigint)")
            try await body(barrier, client)
        }
    }

    static func context(
        _ direction: StepDirection, attempt: Int = 1, saga: String = "0190f5a4-7b1c-7d2e-8f00-000000000001"
    )
        -> HandlerContext
    {
        let command = StepCommand(
            sagaID: saga, step: "debit", participant: "ledger", action: direction == .action ? "debit" : "refund",
            direction: direction, attempt: attempt,
            idempotencyKey: StepCommand.idempotencyKey(sagaID: saga, step: "debit", direction: direction),
            deadline: Date().addingTimeInterval(30), payload: ["amount": 2500], correlationID: nil)
        return HandlerContext(command: CommandMessage(command), logger: logger)
    }

    /// A handler that books an entry and returns its count, so that a second run would show.
    static let book: @Sendable (HandlerContext, PostgresConnection) async throws -> JSONValue = { context, connection in
        let command = context.command
        try await connection.query(
            """
            INSERT INTO entries VALUES (\(command.sagaID), \(command.step), \(command.direction.rawValue), 2500)
            """,
            logger: logger)
        return ["booked": .string(command.direction.rawValue)]
    }

    static func entries(_ client: PostgresClient) async throws -> [String] {
        var directions: [String] = []
        for try await direction in try await client.query("SELECT direction FROM entries ORDER BY direction").decode(String.self) {
            directions.append(direction)
        }
        return directions
    }

    @Test("a repeated command returns the first result without running again")
    func duplicate() async throws {
        try await Self.withBarrier { barrier, client in
            let first = try await barrier.run(Self.context(.action, attempt: 1), Self.book)
            let again = try await barrier.run(Self.context(.action, attempt: 2), Self.book)
            #expect(first == .succeeded(output: ["booked": "action"]))
            #expect(again == first)
            #expect(try await Self.entries(client) == ["action"])
        }
    }

    @Test("concurrent duplicates run the handler once")
    func concurrentDuplicates() async throws {
        try await Self.withBarrier { barrier, client in
            let replies = try await withThrowingTaskGroup(of: ReplyStatus.self) { group in
                for attempt in 1...10 { group.addTask { try await barrier.run(Self.context(.action, attempt: attempt), Self.book) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.count == 10)
            #expect(Set(replies.map(\.wireName)) == ["succeeded"])
            #expect(try await Self.entries(client) == ["action"])
        }
    }

    @Test("a compensation that arrives before its action succeeds with nothing to undo, and the action is then refused")
    func nullCompensationAndHangingAction() async throws {
        try await Self.withBarrier { barrier, client in
            let compensation = try await barrier.run(Self.context(.compensation), Self.book)
            #expect(compensation == .succeeded(output: .null))
            let action = try await barrier.run(Self.context(.action), Self.book)
            guard case .failed(let code, _) = action else {
                Issue.record("an action after its compensation must be refused, got \(action)")
                return
            }
            #expect(code == "compensated")
            // Neither ran: nothing was booked and nothing was undone.
            #expect(try await Self.entries(client).isEmpty)
            // Asked again, both give the same answers.
            #expect(try await barrier.run(Self.context(.action, attempt: 2), Self.book) == action)
            #expect(try await barrier.run(Self.context(.compensation, attempt: 2), Self.book) == compensation)
        }
    }

    @Test("a compensation after a successful action runs once")
    func compensationAfterAction() async throws {
        try await Self.withBarrier { barrier, client in
            _ = try await barrier.run(Self.context(.action), Self.book)
            #expect(try await barrier.run(Self.context(.compensation), Self.book) == .succeeded(output: ["booked": "compensation"]))
            #expect(
                try await barrier.run(Self.context(.compensation, attempt: 2), Self.book) == .succeeded(output: ["booked": "compensation"]))
            #expect(try await Self.entries(client) == ["action", "compensation"])
        }
    }

    @Test(
        "a business failure keeps no writes; its answer holds for its attempt and earlier ones, a later attempt decides afresh; a transient error keeps nothing"
    )
    func failures() async throws {
        try await Self.withBarrier { barrier, client in
            let declined: @Sendable (HandlerContext, PostgresConnection) async throws -> JSONValue = { context, connection in
                _ = try await Self.book(context, connection)
                throw BusinessFailure(code: "insufficient_funds", message: "balance too low")
            }
            let failed = try await barrier.run(Self.context(.action), declined)
            #expect(failed == .failed(code: "insufficient_funds", message: "balance too low"))
            #expect(try await Self.entries(client).isEmpty)
            // Compensating a failed action has nothing to undo, and fences off any later attempt.
            #expect(try await barrier.run(Self.context(.compensation), Self.book) == .succeeded(output: .null))
            guard case .failed(let code, _) = try await barrier.run(Self.context(.action, attempt: 2), Self.book) else {
                Issue.record("an action after its compensation ran")
                return
            }
            #expect(code == "compensated")
            #expect(try await Self.entries(client).isEmpty)

            // A late copy of an earlier attempt, after a later one failed and settled the step, must
            // not take effect: it gets the recorded failure (the money stays where it is).
            let late = "0190f5a4-7b1c-7d2e-8f00-000000000004"
            #expect(try await barrier.run(Self.context(.action, attempt: 2, saga: late), declined) == failed)
            #expect(try await barrier.run(Self.context(.action, attempt: 1, saga: late), Self.book) == failed)
            #expect(try await Self.entries(client).isEmpty)

            // After the pivot a failed step is retried forward: the next attempt runs, and may succeed.
            let forward = "0190f5a4-7b1c-7d2e-8f00-000000000003"
            #expect(try await barrier.run(Self.context(.action, saga: forward), declined) == failed)
            #expect(
                try await barrier.run(Self.context(.action, attempt: 2, saga: forward), Self.book)
                    == .succeeded(output: ["booked": "action"]))
            #expect(try await Self.entries(client) == ["action"])

            struct Flaky: Error {}
            let other = Self.context(.action, saga: "0190f5a4-7b1c-7d2e-8f00-000000000002")
            await #expect(throws: Flaky.self) {
                try await barrier.run(other) { context, connection in
                    _ = try await Self.book(context, connection)
                    throw Flaky()
                }
            }
            #expect(try await Self.entries(client) == ["action"], "the flaky attempt's write is gone")
            // Nothing was recorded: the next attempt runs.
            #expect(try await barrier.run(other, Self.book) == .succeeded(output: ["booked": "action"]))
        }
    }
}
