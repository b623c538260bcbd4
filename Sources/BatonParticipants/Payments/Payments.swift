import BatonCore
import BatonStore
import BatonTransport
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The Payments bounded context: a payment for a transaction, started by the checkout saga and
/// decided once, later, by the payment provider's callback (`confirm` or `fail`).
///
/// The decision goes to the saga as the signal `payment-result` (checkout v2's `await-payment` step
/// waits for it): the callback's transaction stores the signal next to the payment, and a sender
/// posts stored signals to Baton (``SagaSignals``), each under the payment's id as its key, so a
/// resend is taken once. A saga that started the payment before that (checkout v1) waits in its
/// `await-confirmation` step instead, answered as described next.
///
/// The saga's `await-confirmation` step does not hold a worker while the provider takes its time:
/// the handler stores the command (a ``DeferredReply``) next to the payment, in the transaction that
/// saw it pending, and the callback that decides the payment stores the answer in its own
/// transaction; a sender publishes stored answers. Both sides take the payment's row lock, so a
/// callback that comes first is seen by the step, and one that comes after is sent to it.
public struct Payments: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.barrier = IdempotencyBarrier(client: client, table: "payments.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "payments", client: client, barrier: barrier, logger: logger,
            statements: [
                """
                CREATE TABLE IF NOT EXISTS payments.payments (
                    id              text        PRIMARY KEY,
                    transaction_id  text        NOT NULL UNIQUE,
                    customer_id     text        NOT NULL,
                    amount          bigint      NOT NULL CHECK (amount > 0),
                    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
                    status          text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed', 'voided')),
                    failure_reason  text,
                    created_at      timestamptz NOT NULL DEFAULT now(),
                    decided_at      timestamptz
                )
                """,
                // The command waiting for the payment's decision, and the answer once decided.
                """
                CREATE TABLE IF NOT EXISTS payments.awaiting_decision (
                    payment_id  text        PRIMARY KEY REFERENCES payments.payments (id),
                    command     jsonb       NOT NULL,
                    reply       jsonb,
                    sent_at     timestamptz
                )
                """,
                """
                CREATE INDEX IF NOT EXISTS awaiting_decision_unsent ON payments.awaiting_decision (payment_id)
                WHERE reply IS NOT NULL AND sent_at IS NULL
                """,
                // The saga that started the payment, which its decision is signalled to, and its
                // trace, which the log lines about the signal carry.
                "ALTER TABLE payments.payments ADD COLUMN IF NOT EXISTS saga_id text",
                "ALTER TABLE payments.payments ADD COLUMN IF NOT EXISTS traceparent text",
                // The decision as the signal to send (`{"payload": …}` or `{"failed": …}`), until sent.
                """
                CREATE TABLE IF NOT EXISTS payments.decision_signals (
                    payment_id  text        PRIMARY KEY REFERENCES payments.payments (id),
                    saga_id     text        NOT NULL,
                    body        jsonb       NOT NULL,
                    sent_at     timestamptz,
                    outcome     text
                )
                """,
                """
                CREATE INDEX IF NOT EXISTS decision_signals_unsent ON payments.decision_signals (payment_id)
                WHERE sent_at IS NULL
                """,
                """
                CREATE TABLE IF NOT EXISTS payments.payouts (
                    id             text        PRIMARY KEY,
                    withdrawal_id  text        NOT NULL UNIQUE,
                    wallet         text        NOT NULL,
                    bank_account   text        NOT NULL,
                    amount         bigint      NOT NULL CHECK (amount > 0),
                    currency       text        NOT NULL,
                    created_at     timestamptz NOT NULL DEFAULT now()
                )
                """,
                """
                CREATE TABLE IF NOT EXISTS payments.deposits (
                    id                  text        PRIMARY KEY,
                    wallet              text        NOT NULL,
                    amount              bigint      NOT NULL CHECK (amount > 0),
                    currency            text        NOT NULL,
                    provider_reference  text        NOT NULL UNIQUE,
                    status              text        NOT NULL CHECK (status IN ('accepted', 'returned')),
                    created_at          timestamptz NOT NULL DEFAULT now()
                )
                """,
            ])
    }

    // MARK: - Payments

    /// Starts the payment of a transaction, once: starting it again returns the same payment.
    /// - Throws: ``CheckoutError/conflict(_:)`` when the transaction's payment has other terms.
    /// - Parameters:
    ///   - sagaID: The saga starting it, which its decision is signalled to.
    ///   - traceparent: The saga's trace.
    public func start(
        _ request: PaymentRequest, sagaID: String? = nil, traceparent: String? = nil, on connection: PostgresConnection
    ) async throws -> Payment {
        let id = EntityID.make("pay")
        try await connection.run(
            """
            INSERT INTO payments.payments (id, transaction_id, customer_id, amount, currency, status, saga_id, traceparent)
            VALUES (\(id), \(request.transactionID), \(request.customerID), \(request.amount), \(request.currency), 'pending',
                \(sagaID), \(traceparent))
            ON CONFLICT (transaction_id) DO UPDATE SET saga_id = coalesce(payments.payments.saga_id, excluded.saga_id),
                traceparent = coalesce(payments.payments.traceparent, excluded.traceparent)
            """, logger: logger)
        guard let payment = try await find(transactionID: request.transactionID, on: connection) else {
            throw CheckoutError.notFound("no payment for transaction \(request.transactionID)")
        }
        guard payment.amount == request.amount, payment.currency == request.currency, payment.customerID == request.customerID
        else {
            throw CheckoutError.conflict(
                "transaction \(request.transactionID) already has payment \(payment.id) for \(payment.amount) \(payment.currency)")
        }
        return payment
    }

    public func start(_ request: PaymentRequest) async throws -> Payment {
        try await client.withStoreTransaction(logger: logger) { connection in try await start(request, on: connection) }
    }

    /// The provider's callback: the payment went through.
    public func confirm(_ id: String) async throws -> Payment {
        try await decide(id, status: "confirmed", reason: nil)
    }

    /// The provider's callback: the payment was declined.
    public func fail(_ id: String, reason: String) async throws -> Payment {
        try await decide(id, status: "failed", reason: reason)
    }

    /// Decides a pending payment once, and stores the answer for a step waiting on it.
    private func decide(_ id: String, status: String, reason: String?) async throws -> Payment {
        try await client.withStoreTransaction(logger: logger) { connection in
            guard let payment = try await lock(id, on: connection) else { throw CheckoutError.notFound("no payment \(id)") }
            guard payment.status == "pending" else {
                throw CheckoutError.conflict("payment \(id) is \(payment.status) already; a payment is decided once")
            }
            try await connection.run(
                """
                UPDATE payments.payments SET status = \(status), failure_reason = \(reason), decided_at = now() WHERE id = \(id)
                """, logger: logger)
            let decided = try await lock(id, on: connection) ?? payment
            let answer = Self.answer(for: decided)
            let reply = ReplyBody.encode(answer).canonicalJSON
            try await connection.run(
                "UPDATE payments.awaiting_decision SET reply = \(reply)::jsonb WHERE payment_id = \(id)", logger: logger)
            let signal: JSONValue =
                switch answer {
                case .succeeded(let output): ["payload": output]
                case .failed(let code, let message): ["failed": ["code": .string(code), "message": .string(message)]]
                default: ["failed": ["code": "payment_undecided", "message": .string("payment \(id) is \(decided.status)")]]
                }
            try await connection.run(
                """
                INSERT INTO payments.decision_signals (payment_id, saga_id, body)
                SELECT id, saga_id, \(signal.canonicalJSON)::jsonb FROM payments.payments WHERE id = \(id) AND saga_id IS NOT NULL
                ON CONFLICT (payment_id) DO NOTHING
                """, logger: logger)
            logger.info("payment decided", metadata: ["payment.id": "\(id)", "payment.status": "\(status)"])
            return decided
        }
    }

    /// Voids a payment (the saga's compensation): a pending or confirmed payment is voided; a
    /// failed or voided one is left as it is.
    public func void(_ id: String, on connection: PostgresConnection) async throws -> Payment? {
        guard let payment = try await lock(id, on: connection) else { return nil }
        guard payment.status == "pending" || payment.status == "confirmed" else { return payment }
        try await connection.run(
            "UPDATE payments.payments SET status = 'voided', decided_at = now() WHERE id = \(id)", logger: logger)
        try await connection.run("DELETE FROM payments.awaiting_decision WHERE payment_id = \(id)", logger: logger)
        return try await lock(id, on: connection)
    }

    public func payment(_ id: String) async throws -> Payment? {
        try await client.withStoreTransaction(logger: logger) { connection in try await lock(id, on: connection) }
    }

    /// How a step waiting on `payment` is answered.
    static func answer(for payment: Payment) -> ReplyStatus {
        switch payment.status {
        case "confirmed":
            .succeeded(output: ["payment_id": .string(payment.id), "status": "confirmed"])
        case "failed":
            .failed(code: "payment_failed", message: payment.failureReason ?? "the payment provider declined the payment")
        default:
            .failed(code: "payment_\(payment.status)", message: "payment \(payment.id) is \(payment.status)")
        }
    }

    /// Publishes the answers decided but not yet sent; returns how many were sent.
    public func sendDecidedReplies(on jetStream: JetStream) async throws -> Int {
        var unsent: [(String, String, String)] = []
        let rows = try await client.checkedQuery(
            """
            SELECT payment_id, command::text, reply::text FROM payments.awaiting_decision
            WHERE reply IS NOT NULL AND sent_at IS NULL ORDER BY payment_id LIMIT 100
            """, logger: logger)
        for try await row in rows.decode((String, String, String).self) { unsent.append(row) }
        for (paymentID, command, reply) in unsent {
            let status = try ReplyBody.decode(try JSONDecoder().decode(JSONValue.self, from: Data(reply.utf8)))
            try await DeferredReply(json: command).answer(status, on: jetStream)
            try await client.checkedQuery(
                "UPDATE payments.awaiting_decision SET sent_at = now() WHERE payment_id = \(paymentID) AND sent_at IS NULL", logger: logger)
            logger.info("payment decision sent to the saga", metadata: ["payment.id": "\(paymentID)"])
        }
        return unsent.count
    }

    /// The signal that carries each payment's decision to its saga's `await-payment` step.
    public static let decisionSignal = "payment-result"

    /// Sends the decisions stored as signals and not yet sent; returns how many it sent. A signal the
    /// saga refuses (a checkout v1 saga has no step waiting for it; the saga was cancelled) is
    /// recorded as refused and not sent again.
    public func sendDecisionSignals(via signals: SagaSignals) async throws -> Int {
        var unsent: [(String, String, String, String?)] = []
        let rows = try await client.checkedQuery(
            """
            SELECT s.payment_id, s.saga_id, s.body::text, p.traceparent
            FROM payments.decision_signals s JOIN payments.payments p ON p.id = s.payment_id
            WHERE s.sent_at IS NULL ORDER BY s.payment_id LIMIT 100
            """, logger: logger)
        for try await row in rows.decode((String, String, String, String?).self) { unsent.append(row) }
        for (paymentID, sagaID, text, traceparent) in unsent {
            // Lines about a saga carry its trace id, as every participant's do.
            var logger = logger
            logger[metadataKey: "payment.id"] = "\(paymentID)"
            logger[metadataKey: "saga.id"] = "\(sagaID)"
            if let trace = traceparent.flatMap(SagaTrace.ids(of:)) { logger[metadataKey: "trace.id"] = "\(trace.traceID)" }
            let body = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            // The payment's id names the signal: a resend after a lost answer is taken once.
            let key = "payment-\(paymentID)"
            let delivery: SagaSignals.Delivery
            if let failed = body.value(at: ["failed"]) {
                delivery = try await signals.fail(
                    Self.decisionSignal, to: sagaID, code: failed.value(at: ["code"])?.stringValue ?? "payment_failed",
                    message: failed.value(at: ["message"])?.stringValue ?? "", key: key)
            } else {
                delivery = try await signals.send(Self.decisionSignal, to: sagaID, payload: body.value(at: ["payload"]) ?? .null, key: key)
            }
            let outcome: String
            switch delivery {
            case .received, .alreadyReceived:
                outcome = "delivered"
                logger.info("payment decision signalled to the saga")
            case .refused(let reason):
                outcome = "refused: \(reason)"
                logger.notice("the saga refused the payment decision", metadata: ["reason": "\(reason)"])
            }
            try await client.checkedQuery(
                "UPDATE payments.decision_signals SET sent_at = now(), outcome = \(outcome) WHERE payment_id = \(paymentID)",
                logger: logger)
        }
        return unsent.count
    }

    private func lock(_ id: String, on connection: PostgresConnection) async throws -> Payment? {
        let rows = try await connection.run(
            """
            SELECT id, transaction_id, customer_id, amount, currency, status, failure_reason, created_at, decided_at
            FROM payments.payments WHERE id = \(id) FOR UPDATE
            """, logger: logger)
        for try await row in rows.decode(Payment.Row.self) { return Payment(row) }
        return nil
    }

    private func find(transactionID: String, on connection: PostgresConnection) async throws -> Payment? {
        let rows = try await connection.run(
            """
            SELECT id, transaction_id, customer_id, amount, currency, status, failure_reason, created_at, decided_at
            FROM payments.payments WHERE transaction_id = \(transactionID) FOR UPDATE
            """, logger: logger)
        for try await row in rows.decode(Payment.Row.self) { return Payment(row) }
        return nil
    }

    // MARK: - Deposits (the wallet top-up)

    /// Accepts an external deposit into a wallet, once per provider reference.
    public func acceptDeposit(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let payload = context.payload
        guard let wallet = payload.value(at: ["wallet"])?.stringValue, !wallet.isEmpty,
            case .integer(let amount)? = payload.value(at: ["amount"]), amount > 0,
            let currency = payload.value(at: ["currency"])?.stringValue,
            let reference = payload.value(at: ["provider_reference"])?.stringValue, !reference.isEmpty
        else {
            throw BusinessFailure(
                code: "invalid_request", message: "wallet, a positive amount, currency and provider_reference are required")
        }
        guard amount <= Self.depositLimit else {
            throw BusinessFailure(code: "deposit_limit", message: "a deposit is limited to \(Self.depositLimit) minor units")
        }
        let id = EntityID.make("dep")
        let rows = try await connection.run(
            """
            INSERT INTO payments.deposits (id, wallet, amount, currency, provider_reference, status)
            VALUES (\(id), \(wallet), \(amount), \(currency), \(reference), 'accepted')
            ON CONFLICT (provider_reference) DO NOTHING RETURNING id
            """, logger: logger)
        var inserted = false
        for try await _ in rows { inserted = true }
        guard inserted else {
            throw BusinessFailure(code: "duplicate_deposit", message: "deposit \(reference) was already accepted")
        }
        context.logger.info("deposit accepted", metadata: ["wallet": "\(wallet)", "amount": "\(amount)"])
        return ["deposit_id": .string(String(id))]
    }

    /// Returns a deposit to its sender (the top-up's compensation), found by its provider reference
    /// (wallet-topup v2: the deposit's id is unknown when accepting it timed out) or its id (v1).
    public func returnDeposit(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let rows: PostgresRowSequence
        if let reference = context.payload.value(at: ["provider_reference"])?.stringValue, !reference.isEmpty {
            rows = try await connection.run(
                "UPDATE payments.deposits SET status = 'returned' WHERE provider_reference = \(reference) RETURNING id", logger: logger)
        } else {
            let id = context.payload.value(at: ["deposit_id"])?.stringValue ?? ""
            rows = try await connection.run(
                "UPDATE payments.deposits SET status = 'returned' WHERE id = \(id) RETURNING id", logger: logger)
        }
        var returned: String?
        for try await id in rows.decode(String.self) { returned = id }
        return ["deposit_id": returned.map(JSONValue.string) ?? .null, "status": "returned"]
    }

    // MARK: - Payouts (the wallet withdrawal)

    /// Hands a payout to the bank, once per withdrawal: the withdrawal's pivot, as money that has
    /// left cannot be called back.
    public func payout(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> JSONValue {
        let payload = context.payload
        guard let withdrawal = payload.value(at: ["withdrawal_id"])?.stringValue, !withdrawal.isEmpty,
            let wallet = payload.value(at: ["wallet"])?.stringValue, !wallet.isEmpty,
            let bankAccount = payload.value(at: ["bank_account"])?.stringValue, !bankAccount.isEmpty,
            case .integer(let amount)? = payload.value(at: ["amount"]), amount > 0,
            let currency = payload.value(at: ["currency"])?.stringValue
        else {
            throw BusinessFailure(
                code: "invalid_request", message: "withdrawal_id, wallet, bank_account, a positive amount and currency are required")
        }
        guard amount <= Self.depositLimit else {
            throw BusinessFailure(code: "payout_limit", message: "a payout is limited to \(Self.depositLimit) minor units")
        }
        let id = EntityID.make("pot")
        try await connection.run(
            """
            INSERT INTO payments.payouts (id, withdrawal_id, wallet, bank_account, amount, currency)
            VALUES (\(id), \(withdrawal), \(wallet), \(bankAccount), \(amount), \(currency))
            ON CONFLICT (withdrawal_id) DO NOTHING
            """, logger: logger)
        let rows = try await connection.run(
            "SELECT id FROM payments.payouts WHERE withdrawal_id = \(withdrawal)", logger: logger)
        var payoutID = String(id)
        for try await existing in rows.decode(String.self) { payoutID = existing }
        context.logger.info("payout handed to the bank", metadata: ["payout.id": "\(payoutID)", "amount": "\(amount)"])
        return ["payout_id": .string(payoutID), "status": "sent"]
    }

    /// The payouts of a wallet, oldest first: (withdrawal id, amount).
    public func payouts(wallet: String) async throws -> [(withdrawal: String, amount: Int64)] {
        var payouts: [(withdrawal: String, amount: Int64)] = []
        let rows = try await client.checkedQuery(
            "SELECT withdrawal_id, amount FROM payments.payouts WHERE wallet = \(wallet) ORDER BY created_at, id", logger: logger)
        for try await row in rows.decode((String, Int64).self) { payouts.append((row.0, row.1)) }
        return payouts
    }

    /// The largest single deposit accepted, and the largest payout, in minor units.
    public static let depositLimit: Int64 = 1_000_000

    // MARK: - Handlers

    /// `start` (compensated by `void`), `await-confirmation` (answered when the payment is
    /// decided; checkout v1), `accept-deposit` (compensated by `return-deposit`), and `payout`.
    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("start", barrier: barrier) { context, connection in
            let payment = try await CheckoutError.failingAsBusiness {
                try await start(
                    try PaymentRequest(context.payload), sagaID: context.command.sagaID, traceparent: context.command.traceparent,
                    on: connection)
            }
            context.logger.info("payment started", metadata: ["payment.id": "\(payment.id)"])
            return ["payment_id": .string(payment.id), "status": .string(payment.status)]
        }
        // Checkout v3 names the transaction only (a transaction has one payment, and the payment's id
        // is unknown when starting it timed out); v2 named the payment.
        handlers.compensation("void", barrier: barrier) { context, connection in
            var id = context.payload.value(at: ["payment_id"])?.stringValue ?? ""
            if id.isEmpty, let transactionID = context.payload.value(at: ["transaction_id"])?.stringValue {
                id = try await find(transactionID: transactionID, on: connection)?.id ?? ""
            }
            let payment = try await void(id, on: connection)
            return ["payment_id": id.isEmpty ? .null : .string(id), "status": .string(payment?.status ?? "none")]
        }
        handlers.action("await-confirmation") { context in try await awaitDecision(context) }
        handlers.action("accept-deposit", barrier: barrier) { context, connection in try await acceptDeposit(context, connection) }
        handlers.action("payout", barrier: barrier) { context, connection in try await payout(context, connection) }
        handlers.compensation("return-deposit", barrier: barrier) { context, connection in
            try await returnDeposit(context, connection)
        }
        return handlers
    }

    /// Answers at once when the payment is decided; otherwise keeps the command and defers.
    func awaitDecision(_ context: HandlerContext) async throws -> JSONValue {
        guard let id = context.payload.value(at: ["payment_id"])?.stringValue else {
            throw BusinessFailure(code: "invalid_request", message: "\"payment_id\" is required")
        }
        let decided: Payment? = try await client.withStoreTransaction(logger: logger) { connection in
            guard let payment = try await lock(id, on: connection) else {
                throw BusinessFailure(code: "unknown_payment", message: "no payment \(id)")
            }
            guard payment.status == "pending" else { return payment }
            // The latest attempt's command replaces an earlier one: it is the one the saga awaits.
            let command = DeferredReply(context.command).json
            try await connection.run(
                """
                INSERT INTO payments.awaiting_decision (payment_id, command) VALUES (\(id), \(command)::jsonb)
                ON CONFLICT (payment_id) DO UPDATE SET command = excluded.command, reply = NULL, sent_at = NULL
                """, logger: logger)
            return nil
        }
        guard let decided else {
            context.logger.info("payment pending; the step waits for the provider", metadata: ["payment.id": "\(id)"])
            throw ReplyDeferred()
        }
        switch Self.answer(for: decided) {
        case .succeeded(let output): return output
        case .failed(let code, let message): throw BusinessFailure(code: code, message: message)
        default: throw RetryLater(message: "payment \(id) is undecided")
        }
    }
}

/// What starting a payment takes.
public struct PaymentRequest: Sendable, Hashable {
    public var transactionID: String
    public var customerID: String
    public var amount: Int64
    public var currency: String

    public init(transactionID: String, customerID: String, amount: Int64, currency: String) {
        self.transactionID = transactionID
        self.customerID = customerID
        self.amount = amount
        self.currency = currency
    }

    /// Reads a request from a JSON body or a command's payload.
    /// - Throws: ``CheckoutError/invalid(_:)`` saying which field is wrong.
    public init(_ json: JSONValue) throws {
        guard let transactionID = json.value(at: ["transaction_id"])?.stringValue, !transactionID.isEmpty else {
            throw CheckoutError.invalid("\"transaction_id\" is required")
        }
        guard let customerID = json.value(at: ["customer_id"])?.stringValue, !customerID.isEmpty else {
            throw CheckoutError.invalid("\"customer_id\" is required")
        }
        guard case .integer(let amount)? = json.value(at: ["amount"]), amount > 0 else {
            throw CheckoutError.invalid("\"amount\" must be a positive integer in minor units")
        }
        guard let currency = json.value(at: ["currency"])?.stringValue, currency.wholeMatch(of: /[A-Z]{3}/) != nil else {
            throw CheckoutError.invalid("\"currency\" must be an ISO 4217 code such as EUR")
        }
        self.init(transactionID: transactionID, customerID: customerID, amount: amount, currency: currency)
    }
}

/// A payment as stored.
public struct Payment: Sendable, Hashable {
    public var id: String
    public var transactionID: String
    public var customerID: String
    public var amount: Int64
    public var currency: String
    /// `pending`, `confirmed`, `failed` or `voided`.
    public var status: String
    public var failureReason: String?
    public var createdAt: Date
    public var decidedAt: Date?

    typealias Row = (String, String, String, Int64, String, String, String?, Date, Date?)

    init(_ row: Row) {
        (id, transactionID, customerID, amount, currency, status, failureReason, createdAt, decidedAt) = row
    }

    public var json: JSONValue {
        [
            "id": .string(id), "transaction_id": .string(transactionID), "customer_id": .string(customerID),
            "amount": .integer(amount), "currency": .string(currency), "status": .string(status),
            "failure_reason": failureReason.map(JSONValue.string) ?? .null,
            "created_at": .string(createdAt.formatted(.iso8601)),
            "decided_at": decidedAt.map { .string($0.formatted(.iso8601)) } ?? .null,
        ]
    }
}

/// Why a Transactions or Payments request was refused. Handlers reply these as business failures;
/// the HTTP APIs answer them as 404, 409 and 422 problems.
public enum CheckoutError: Error, Sendable, Hashable {
    case notFound(String)
    case conflict(String)
    case invalid(String)
}

extension CheckoutError {
    /// The refusal as a handler's business failure.
    public var businessFailure: BusinessFailure {
        switch self {
        case .notFound(let message): BusinessFailure(code: "not_found", message: message)
        case .conflict(let message): BusinessFailure(code: "conflict", message: message)
        case .invalid(let message): BusinessFailure(code: "invalid_request", message: message)
        }
    }

    /// Runs a handler's `body`, replying a refusal as a business failure (it had no effect).
    static func failingAsBusiness<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as CheckoutError { throw error.businessFailure }
    }
}
