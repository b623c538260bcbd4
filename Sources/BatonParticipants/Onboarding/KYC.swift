import BatonCore
import BatonStore
import BatonWorker
import Foundation
import Logging
import PostgresNIO

/// The KYC participant (onboarding): checks a person, after a delay that stands for the identity
/// provider's response time. A rejection is a business failure, so the onboarding saga compensates
/// the registration. Every decision is kept, with the check that made it.
///
/// Two checks, which onboarding v2 runs in parallel: `verify-documents` (18 or older on the day of
/// the check; a supported country; a document number of 6 to 12 letters and digits) and `screen`
/// (a name not on the watch list, `kyc.watchlist`). `verify` does both one after the other, for
/// the sagas of onboarding v1.
public struct KYC: Sendable {
    public let client: PostgresClient
    public let barrier: IdempotencyBarrier
    /// How long a verification takes.
    public let delay: Duration
    let logger: Logger

    public static let supportedCountries: Set<String> = ["AT", "BE", "DE", "ES", "FR", "GB", "IE", "IT", "NL", "PT", "US"]

    public init(client: PostgresClient, delay: Duration = .seconds(1), logger: Logger) {
        self.client = client
        self.delay = delay
        self.barrier = IdempotencyBarrier(client: client, table: "kyc.baton_barrier", logger: logger)
        self.logger = logger
    }

    public func prepare() async throws {
        try await ParticipantSchema.prepare(
            "kyc", client: client, barrier: barrier, logger: logger,
            statements: [
                "CREATE TABLE IF NOT EXISTS kyc.watchlist (name text PRIMARY KEY)",
                "INSERT INTO kyc.watchlist (name) VALUES ('mallory sanctioned'), ('eve watchlisted') ON CONFLICT DO NOTHING",
                """
                CREATE TABLE IF NOT EXISTS kyc.checks (
                    id          uuid        PRIMARY KEY,
                    user_id     text        NOT NULL,
                    decision    text        NOT NULL CHECK (decision IN ('approved', 'rejected')),
                    reasons     text[]      NOT NULL,
                    checked_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                "ALTER TABLE kyc.checks ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'full'",
            ])
    }

    public var handlers: WorkerHandlers {
        var handlers = WorkerHandlers()
        handlers.action("verify", barrier: barrier) { context, connection in
            try await check(.full, context) {
                try Self.ruleViolations(context.payload, today: .now) + (try await screen(context, connection))
            }
        }
        handlers.action("verify-documents", barrier: barrier) { context, _ in
            try await check(.documents, context) { try Self.ruleViolations(context.payload, today: .now) }
        }
        handlers.action("screen", barrier: barrier) { context, connection in
            try await check(.screening, context) { try await screen(context, connection) }
        }
        return handlers
    }

    /// Which check a decision came from.
    enum Check: String {
        case full, documents, screening
    }

    /// Runs one check after the provider's delay, records its decision, and fails the step when
    /// it found reasons to reject.
    func check(_ kind: Check, _ context: HandlerContext, reasons: () async throws -> [String]) async throws -> JSONValue {
        let userID = context.payload.value(at: ["user_id"])?.stringValue ?? ""
        try await Task.sleep(for: delay)
        let reasons = try await reasons()
        let decision = reasons.isEmpty ? "approved" : "rejected"
        // A rejection is recorded outside the barrier's savepoint, which a business failure rolls back.
        _ = try await client.withStoreTransaction(logger: logger) { own in
            try await own.run(
                """
                INSERT INTO kyc.checks (id, user_id, decision, reasons, kind)
                VALUES (\(UUID()), \(userID), \(decision), \(reasons), \(kind.rawValue))
                """,
                logger: logger)
        }
        guard reasons.isEmpty else {
            context.logger.notice("KYC rejected", metadata: ["user.id": "\(userID)", "check": "\(kind)", "reasons": "\(reasons)"])
            throw BusinessFailure(code: "kyc_rejected", message: reasons.joined(separator: "; "))
        }
        context.logger.info("KYC approved", metadata: ["user.id": "\(userID)", "check": "\(kind)"])
        return ["user_id": .string(userID), "decision": "approved"]
    }

    /// The screening's reasons to reject: the name is on the watch list.
    func screen(_ context: HandlerContext, _ connection: PostgresConnection) async throws -> [String] {
        let name = context.payload.value(at: ["name"])?.stringValue ?? ""
        let listed = try await connection.run("SELECT 1 FROM kyc.watchlist WHERE name = \(name.lowercased())", logger: logger)
        for try await _ in listed { return ["the name is on the watch list"] }
        return []
    }

    /// What the rules object to (the watch list aside); empty when the person passes.
    static func ruleViolations(_ payload: JSONValue, today: Date) throws -> [String] {
        var reasons: [String] = []
        let calendar = Calendar(identifier: .gregorian)
        if let text = payload.value(at: ["birth_date"])?.stringValue,
            let birth = try? Date.ISO8601FormatStyle().year().month().day().parse(text)
        {
            let age = calendar.dateComponents([.year], from: birth, to: today).year ?? 0
            if age < 18 { reasons.append("under 18") }
        } else {
            reasons.append("birth_date must be a date such as 1990-04-01")
        }
        let country = payload.value(at: ["country"])?.stringValue ?? ""
        if !supportedCountries.contains(country) { reasons.append("country '\(country)' is not supported") }
        let document = payload.value(at: ["document_number"])?.stringValue ?? ""
        if document.wholeMatch(of: /[A-Za-z0-9]{6,12}/) == nil { reasons.append("document_number must be 6 to 12 letters and digits") }
        return reasons
    }

    /// The decisions recorded for a user, as `check: decision`, by check (`documents`, `full`,
    /// `screening`).
    public func decisions(userID: String) async throws -> [String] {
        var decisions: [String] = []
        let rows = try await client.checkedQuery(
            "SELECT kind, decision FROM kyc.checks WHERE user_id = \(userID) ORDER BY kind, checked_at", logger: logger)
        for try await (kind, decision) in rows.decode((String, String).self) { decisions.append("\(kind): \(decision)") }
        return decisions
    }
}
