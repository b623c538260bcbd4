import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The ledger participant: accounts with balances in integer minor units, and the entries that
/// move them. Every saga operation (debit, its refund, credit) runs behind the idempotency barrier,
/// in the ledger's own schema, so a leg is applied once whatever is redelivered or retried.
public struct Ledger: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "ledger.baton_barrier", logger: logger)
        self.logger = logger
    }

    /// Creates the ledger's schema and the barrier's table if they are missing.
    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "ledger", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS ledger.accounts (
                    id         text        PRIMARY KEY,
                    currency   text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
                    balance    bigint      NOT NULL CHECK (balance >= 0),
                    opened_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                """
                CREATE TABLE IF NOT EXISTS ledger.entries (
                    id          uuid        PRIMARY KEY,
                    account_id  text        NOT NULL REFERENCES ledger.accounts (id),
                    kind        text        NOT NULL CHECK (kind IN ('opening', 'debit', 'credit', 'refund')),
                    amount      bigint      NOT NULL CHECK (amount > 0),
                    balance     bigint      NOT NULL,
                    reference   text        NOT NULL,
                    saga_id     text,
                    step        text,
                    created_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX IF NOT EXISTS entries_account ON ledger.entries (account_id, created_at)",
            ])
    }

    /// Opens an account (with an opening balance, for demos and tests).
    /// - Throws: ``BusinessFailure`` `account_exists` when the id is taken.
    public func openAccount(_ id: String, currency: String, balance: Int64 = 0) async throws {
        try await client.withStoreTransaction(logger: logger) { connection in
            guard try await openAccount(id, currency: currency, balance: balance, on: connection) else {
                throw BusinessFailure(code: "account_exists", message: "account \(id) already exists")
            }
        }
    }

    /// Opens an account in `connection`'s transaction; returns false when the id is taken.
    func openAccount(_ id: String, currency: String, balance: Int64, on connection: PostgresConnection) async throws -> Bool {
        let inserted = try await connection.run(
            """
            INSERT INTO ledger.accounts (id, currency, balance) VALUES (\(id), \(currency), \(balance))
            ON CONFLICT (id) DO NOTHING RETURNING 1
            """, logger: logger)
        var created = false
        for try await _ in inserted { created = true }
        if created && balance > 0 {
            try await connection.run(
                """
                INSERT INTO ledger.entries (id, account_id, kind, amount, balance, reference)
                VALUES (\(UUID()), \(id), 'opening', \(balance), \(balance), 'opening balance')
                """, logger: logger)
        }
        return created
    }

    /// The account's balance in minor units, or `nil` when there is no such account.
    public func balance(_ id: String) async throws -> Int64? {
        for try await balance in try await client.checkedQuery("SELECT balance FROM ledger.accounts WHERE id = \(id)", logger: logger)
            .decode(Int64.self)
        {
            return balance
        }
        return nil
    }

    /// An account's entries, oldest first: kind, amount, balance after, reference.
    public func history(_ id: String) async throws -> [(kind: String, amount: Int64, balance: Int64, reference: String)] {
        var entries: [(kind: String, amount: Int64, balance: Int64, reference: String)] = []
        let rows = try await client.checkedQuery(
            "SELECT kind, amount, balance, reference FROM ledger.entries WHERE account_id = \(id) ORDER BY created_at, id", logger: logger)
        for try await (kind, amount, balance, reference) in rows.decode((String, Int64, Int64, String).self) {
            entries.append((kind, amount, balance, reference))
        }
        return entries
    }

    /// The sum of every balance: what no mix of sagas may change.
    public func totalBalance() async throws -> Int64 {
        for try await total in try await client.checkedQuery(
            "SELECT coalesce(sum(balance), 0)::bigint FROM ledger.accounts", logger: logger
        ).decode(Int64.self) {
            return total
        }
        return 0
    }

    /// The ledger's handlers: `debit` with its compensation `refund`, `credit`, and `open-wallet`
    /// (onboarding's account opening: a wallet per user, empty).
    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("open-wallet", barrier: barrier) { context, connection in
            guard let user = context.payload.value(at: ["user_id"])?.stringValue, !user.isEmpty,
                let currency = context.payload.value(at: ["currency"])?.stringValue, currency.wholeMatch(of: /[A-Z]{3}/) != nil
            else {
                throw BusinessFailure(code: "invalid_request", message: "\"user_id\" and an ISO 4217 \"currency\" are required")
            }
            let account = "wallet-\(user)"
            guard try await openAccount(account, currency: currency, balance: 0, on: connection) else {
                throw BusinessFailure(code: "account_exists", message: "account \(account) already exists")
            }
            context.logger.info("wallet opened", metadata: ["account": "\(account)"])
            return ["account": .string(account)]
        }
        handlers.action("debit", barrier: barrier) { context, connection in try await debit(context, connection) }
        handlers.compensation("refund", barrier: barrier) { context, connection in try await refund(context, connection) }
        handlers.action("credit", barrier: barrier) { context, connection in try await credit(context, connection) }
        return handlers
    }

    // MARK: - Operations (inside the barrier's transaction)

    public func debit(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let movement = try Movement(context.payload)
        let balance = try await lockedBalance(movement, on: connection)
        guard balance >= movement.amount else {
            throw BusinessFailure(
                code: "insufficient_funds",
                message: "account \(movement.account) holds \(balance), less than \(movement.amount) \(movement.currency)")
        }
        return try await book(movement, kind: "debit", newBalance: balance - movement.amount, context, on: connection)
    }

    public func refund(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let movement = try Movement(context.payload)
        let balance = try await lockedBalance(movement, on: connection)
        return try await book(movement, kind: "refund", newBalance: balance + movement.amount, context, on: connection)
    }

    public func credit(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let movement = try Movement(context.payload)
        let balance = try await lockedBalance(movement, on: connection)
        return try await book(movement, kind: "credit", newBalance: balance + movement.amount, context, on: connection)
    }

    /// The account's balance, locked for this transaction, after checking it exists in the currency.
    private func lockedBalance(_ movement: Movement, on connection: PostgresConnection) async throws -> Int64 {
        let rows = try await connection.run(
            "SELECT balance, currency FROM ledger.accounts WHERE id = \(movement.account) FOR UPDATE", logger: logger)
        for try await (balance, currency) in rows.decode((Int64, String).self) {
            guard currency == movement.currency else {
                throw BusinessFailure(
                    code: "currency_mismatch", message: "account \(movement.account) is in \(currency), not \(movement.currency)")
            }
            return balance
        }
        throw BusinessFailure(code: "unknown_account", message: "no account \(movement.account)")
    }

    private func book(
        _ movement: Movement, kind: String, newBalance: Int64, _ context: HandlerContext, on connection: PostgresConnection
    )
        async throws -> JSONValue
    {
        let entry = UUID()
        try await connection.run(
            "UPDATE ledger.accounts SET balance = \(newBalance) WHERE id = \(movement.account)", logger: logger)
        try await connection.run(
            """
            INSERT INTO ledger.entries (id, account_id, kind, amount, balance, reference, saga_id, step)
            VALUES (\(entry), \(movement.account), \(kind), \(movement.amount), \(newBalance), \(movement.reference),
                \(context.command.sagaID), \(context.command.step))
            """, logger: logger)
        context.logger.info(
            "ledger \(kind)", metadata: ["account": "\(movement.account)", "amount": "\(movement.amount)", "balance": "\(newBalance)"])
        return ["entry_id": .string(entry.uuidString.lowercased()), "balance": .integer(newBalance)]
    }
}

/// An amount of money moving on one account, read from a command's payload.
struct Movement {
    var account: String
    var amount: Int64
    var currency: String
    var reference: String

    init(_ payload: JSONValue) throws {
        guard let account = payload.value(at: ["account"])?.stringValue, !account.isEmpty else {
            throw BusinessFailure(code: "invalid_request", message: "\"account\" is required")
        }
        guard case .integer(let amount)? = payload.value(at: ["amount"]), amount > 0 else {
            throw BusinessFailure(code: "invalid_amount", message: "\"amount\" must be a positive integer in minor units")
        }
        guard let currency = payload.value(at: ["currency"])?.stringValue, currency.count == 3 else {
            throw BusinessFailure(code: "invalid_request", message: "\"currency\" must be an ISO 4217 code")
        }
        self.account = account
        self.amount = amount
        self.currency = currency
        self.reference = payload.value(at: ["reference"])?.stringValue ?? payload.value(at: ["reason"])?.stringValue ?? ""
    }
}
