import BatonClient
import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The Transactions bounded context: a customer's transaction (a basket of items), open while
/// items are added, submitted for payment (its items then immutable), and completed, failed or
/// cancelled by the `checkout` saga that submitting starts on Baton.
///
/// Statuses: `open` → `submitted` → `completed`; `submitted` → `failed` (the payment failed or timed
/// out) or `cancelled` (the customer cancelled before completion); `open` → `cancelled`.
public struct Transactions: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    /// Where the checkout saga is started and cancelled.
    public let baton: BatonClient
    let logger: Logger

    public init(client: PostgresClient, baton: BatonClient, logger: Logger) {
        self.client = client
        self.baton = baton
        self.barrier = IdempotencyBarrier(client: client, table: "transactions.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "transactions", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS transactions.transactions (
                    id                text        PRIMARY KEY,
                    customer_id       text        NOT NULL,
                    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
                    status            text        NOT NULL
                                      CHECK (status IN ('open', 'submitted', 'completed', 'failed', 'cancelled')),
                    saga_id           text,
                    payment_id        text,
                    failure_reason    text,
                    cancel_requested  boolean     NOT NULL DEFAULT false,
                    created_at        timestamptz NOT NULL DEFAULT now(),
                    updated_at        timestamptz NOT NULL DEFAULT now()
                )
                """,
                """
                CREATE TABLE IF NOT EXISTS transactions.items (
                    transaction_id  text    NOT NULL REFERENCES transactions.transactions (id),
                    line            integer NOT NULL,
                    sku             text    NOT NULL,
                    description     text    NOT NULL,
                    quantity        integer NOT NULL CHECK (quantity > 0),
                    unit_price      bigint  NOT NULL CHECK (unit_price >= 0),
                    PRIMARY KEY (transaction_id, line)
                )
                """,
            ])
    }

    // MARK: - The API's operations

    /// Opens a transaction for a customer.
    public func create(customerID: String, currency: String) async throws -> Transaction {
        guard !customerID.isEmpty else { throw CheckoutError.invalid("\"customer_id\" is required") }
        guard currency.wholeMatch(of: /[A-Z]{3}/) != nil else {
            throw CheckoutError.invalid("\"currency\" must be an ISO 4217 code such as EUR")
        }
        let id = EntityID.make("txn")
        return try await client.withStoreTransaction(logger: logger) { connection in
            try await connection.run(
                """
                INSERT INTO transactions.transactions (id, customer_id, currency, status)
                VALUES (\(String(id)), \(customerID), \(currency), 'open')
                """, logger: logger)
            return try await load(String(id), on: connection)!
        }
    }

    /// Adds an item to an open transaction.
    public func addItem(to id: String, _ item: Item) async throws -> Transaction {
        guard !item.sku.isEmpty else { throw CheckoutError.invalid("\"sku\" is required") }
        guard item.quantity > 0 else { throw CheckoutError.invalid("\"quantity\" must be a positive integer") }
        guard item.unitPrice >= 0 else { throw CheckoutError.invalid("\"unit_price\" must be zero or more minor units") }
        return try await client.withStoreTransaction(logger: logger) { connection in
            let transaction = try await locked(id, on: connection)
            guard transaction.status == "open" else {
                throw CheckoutError.conflict("transaction \(id) is \(transaction.status); items are immutable after submit")
            }
            try await connection.run(
                """
                INSERT INTO transactions.items (transaction_id, line, sku, description, quantity, unit_price)
                VALUES (\(id), \(transaction.items.count + 1), \(item.sku), \(item.description), \(item.quantity), \(item.unitPrice))
                """, logger: logger)
            try await connection.run("UPDATE transactions.transactions SET updated_at = now() WHERE id = \(id)", logger: logger)
            return try await load(id, on: connection)!
        }
    }

    /// Submits a transaction: freezes its items, then starts its `checkout` saga on Baton, keyed by
    /// the transaction id, so that submitting again (after a timeout, say) starts nothing new.
    /// - Parameter traceparent: The caller's W3C trace context, passed on to Baton so that the
    ///   saga's steps join the caller's trace.
    public func submit(_ id: String, traceparent: String? = nil) async throws -> Transaction {
        let transaction = try await client.withStoreTransaction(logger: logger) { connection in
            let transaction = try await locked(id, on: connection)
            switch transaction.status {
            case "open":
                guard transaction.total > 0 else {
                    throw CheckoutError.invalid("transaction \(id) totals \(transaction.total); the total must be positive")
                }
                try await connection.run(
                    "UPDATE transactions.transactions SET status = 'submitted', updated_at = now() WHERE id = \(id)",
                    logger: logger)
                return try await load(id, on: connection)!
            case "cancelled" where transaction.sagaID == nil:
                throw CheckoutError.conflict("transaction \(id) was cancelled before it was submitted")
            default:
                return transaction
            }
        }
        let sagaID = try await startCheckout(transaction, traceparent: traceparent)
        return try await client.withStoreTransaction(logger: logger) { connection in
            try await connection.run(
                "UPDATE transactions.transactions SET saga_id = \(sagaID) WHERE id = \(id) AND saga_id IS NULL", logger: logger)
            return try await load(id, on: connection)!
        }
    }

    /// Cancels a transaction before it completes: an open one at once; a submitted one by
    /// cancelling its saga, whose compensation then marks it cancelled.
    /// - Throws: ``CheckoutError/conflict(_:)`` once it has completed, or when Baton refuses (the
    ///   saga is past its pivot).
    public func cancel(_ id: String, traceparent: String? = nil) async throws -> Transaction {
        let transaction = try await client.withStoreTransaction(logger: logger) { connection in
            let transaction = try await locked(id, on: connection)
            switch transaction.status {
            case "open":
                try await connection.run(
                    "UPDATE transactions.transactions SET status = 'cancelled', updated_at = now() WHERE id = \(id)",
                    logger: logger)
            case "submitted":
                try await connection.run(
                    "UPDATE transactions.transactions SET cancel_requested = true, updated_at = now() WHERE id = \(id)",
                    logger: logger)
            case "completed":
                throw CheckoutError.conflict("transaction \(id) has completed; it can no longer be cancelled")
            default:
                break
            }
            return try await load(id, on: connection)!
        }
        guard transaction.status == "submitted" else { return transaction }
        // The saga may have been started without its id being recorded yet: starting it again
        // (idempotently) finds it.
        let sagaID: String
        if let known = transaction.sagaID {
            sagaID = known
        } else {
            sagaID = try await startCheckout(transaction, traceparent: traceparent)
        }
        let reason: JSONValue = ["reason": .string("the customer cancelled transaction \(id)")]
        do {
            _ = try await baton.request("POST", "/v1/sagas/\(sagaID)/cancel", body: Data(reason.canonicalJSON.utf8))
        } catch let failure as BatonClient.Failure where failure.status == 409 {
            throw CheckoutError.conflict("transaction \(id) can no longer be cancelled: \(failure.detail)")
        }
        return try await self.transaction(id) ?? transaction
    }

    public func transaction(_ id: String) async throws -> Transaction? {
        try await client.withStoreTransaction(logger: logger) { connection in try await load(id, on: connection) }
    }

    /// Starts (or finds) the transaction's checkout saga; returns its id.
    private func startCheckout(_ transaction: Transaction, traceparent: String?) async throws -> String {
        let input: JSONValue = [
            "transaction_id": .string(transaction.id), "customer_id": .string(transaction.customerID),
            "amount": .integer(transaction.total), "currency": .string(transaction.currency),
        ]
        let body: JSONValue = ["workflow": "checkout", "input": input]
        var headers = ["Idempotency-Key": "checkout-\(transaction.id)", "X-Correlation-ID": transaction.id]
        headers["traceparent"] = traceparent
        let response = try await baton.request("POST", "/v1/sagas", body: Data(body.canonicalJSON.utf8), headers: headers)
        guard let sagaID = response.body.value(at: ["id"])?.stringValue else {
            throw BatonClient.Failure(status: response.status, detail: "Baton answered without a saga id")
        }
        return sagaID
    }

    // MARK: - The saga's steps

    /// `mark-submitted` (compensated by `cancel`) and `complete` (the checkout's pivot).
    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("mark-submitted", barrier: barrier) { context, connection in
            try await CheckoutError.failingAsBusiness {
                let id = try Self.transactionID(context.payload)
                let transaction = try await locked(id, on: connection)
                guard transaction.status == "submitted" else {
                    throw CheckoutError.conflict("transaction \(id) is \(transaction.status), not submitted")
                }
                try await connection.run(
                    "UPDATE transactions.transactions SET saga_id = \(context.command.sagaID) WHERE id = \(id)", logger: logger)
                return ["transaction_id": .string(id), "total": .integer(transaction.total)]
            }
        }
        handlers.compensation("cancel", barrier: barrier) { context, connection in
            try await CheckoutError.failingAsBusiness {
                let id = try Self.transactionID(context.payload)
                let transaction = try await locked(id, on: connection)
                guard transaction.status == "submitted" else {
                    return ["transaction_id": .string(id), "status": .string(transaction.status)]
                }
                let status = transaction.cancelRequested ? "cancelled" : "failed"
                let reason = transaction.cancelRequested ? "cancelled by the customer" : context.payload.value(at: ["reason"])?.stringValue
                try await connection.run(
                    """
                    UPDATE transactions.transactions SET status = \(status), failure_reason = \(reason), updated_at = now()
                    WHERE id = \(id)
                    """, logger: logger)
                context.logger.notice("transaction \(status)", metadata: ["transaction.id": "\(id)"])
                return ["transaction_id": .string(id), "status": .string(status)]
            }
        }
        handlers.action("complete", barrier: barrier) { context, connection in
            try await CheckoutError.failingAsBusiness {
                let id = try Self.transactionID(context.payload)
                let paymentID = context.payload.value(at: ["payment_id"])?.stringValue
                try await connection.run(
                    """
                    UPDATE transactions.transactions SET status = 'completed', payment_id = \(paymentID), updated_at = now()
                    WHERE id = \(id) AND status = 'submitted'
                    """, logger: logger)
                let transaction = try await locked(id, on: connection)
                context.logger.info("transaction completed", metadata: ["transaction.id": "\(id)"])
                return ["transaction_id": .string(id), "status": .string(transaction.status)]
            }
        }
        return handlers
    }

    private static func transactionID(_ payload: JSONValue) throws -> String {
        guard let id = payload.value(at: ["transaction_id"])?.stringValue, !id.isEmpty else {
            throw CheckoutError.invalid("\"transaction_id\" is required")
        }
        return id
    }

    // MARK: - Reading

    private func locked(_ id: String, on connection: PostgresConnection) async throws -> Transaction {
        try await connection.run("SELECT 1 FROM transactions.transactions WHERE id = \(id) FOR UPDATE", logger: logger)
        guard let transaction = try await load(id, on: connection) else { throw CheckoutError.notFound("no transaction \(id)") }
        return transaction
    }

    private func load(_ id: String, on connection: PostgresConnection) async throws -> Transaction? {
        var transaction: Transaction?
        let rows = try await connection.run(
            """
            SELECT id, customer_id, currency, status, saga_id, payment_id, failure_reason, cancel_requested, created_at, updated_at
            FROM transactions.transactions WHERE id = \(id)
            """, logger: logger)
        for try await row in rows.decode(Transaction.Row.self) { transaction = Transaction(row) }
        guard var transaction else { return nil }
        let items = try await connection.run(
            "SELECT sku, description, quantity, unit_price FROM transactions.items WHERE transaction_id = \(id) ORDER BY line",
            logger: logger)
        for try await (sku, description, quantity, unitPrice) in items.decode((String, String, Int32, Int64).self) {
            transaction.items.append(Item(sku: sku, description: description, quantity: Int(quantity), unitPrice: unitPrice))
        }
        return transaction
    }
}

/// A transaction as stored, with its items.
public struct Transaction: Sendable, Hashable {
    public var id: String
    public var customerID: String
    public var currency: String
    /// `open`, `submitted`, `completed`, `failed` or `cancelled`.
    public var status: String
    public var sagaID: String?
    public var paymentID: String?
    public var failureReason: String?
    public var cancelRequested: Bool
    public var createdAt: Date
    public var updatedAt: Date
    public var items: [Item] = []

    typealias Row = (String, String, String, String, String?, String?, String?, Bool, Date, Date)

    init(_ row: Row) {
        (id, customerID, currency, status, sagaID, paymentID, failureReason, cancelRequested, createdAt, updatedAt) = row
    }

    /// The sum of the items, in minor units.
    public var total: Int64 { items.reduce(0) { $0 + Int64($1.quantity) * $1.unitPrice } }

    public var json: JSONValue {
        [
            "id": .string(id), "customer_id": .string(customerID), "currency": .string(currency), "status": .string(status),
            "total": .integer(total), "saga_id": sagaID.map(JSONValue.string) ?? .null,
            "payment_id": paymentID.map(JSONValue.string) ?? .null,
            "failure_reason": failureReason.map(JSONValue.string) ?? .null, "cancel_requested": .bool(cancelRequested),
            "items": .array(items.map(\.json)),
            "created_at": .string(createdAt.formatted(.iso8601)), "updated_at": .string(updatedAt.formatted(.iso8601)),
        ]
    }
}

/// One line of a transaction.
public struct Item: Sendable, Hashable {
    public var sku: String
    public var description: String
    public var quantity: Int
    /// In minor units.
    public var unitPrice: Int64

    public init(sku: String, description: String, quantity: Int, unitPrice: Int64) {
        self.sku = sku
        self.description = description
        self.quantity = quantity
        self.unitPrice = unitPrice
    }

    var json: JSONValue {
        [
            "sku": .string(sku), "description": .string(description), "quantity": .integer(Int64(quantity)),
            "unit_price": .integer(unitPrice),
        ]
    }
}
