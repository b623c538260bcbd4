import Foundation
import PostgresNIO

/// What an error from PostgreSQL means to a caller, and how to log it.
///
/// PostgresNIO's `PSQLError` prints a generic sentence on purpose (its details may hold data); its
/// debug form holds the bound values. ``describe(_:)`` keeps what an operator needs and drops the
/// values: the SQLSTATE, the server's message, and the statement.
public enum StoreErrors {
    /// Whether `error` says the database cannot be reached now (a connection failed or was lost, the
    /// pool gave up connecting, the server is shutting down or starting): worth a 503 and a retry,
    /// not a 500.
    public static func isUnavailable(_ error: any Error) -> Bool {
        if let transaction = error as? PostgresTransactionError {
            return [transaction.beginError, transaction.closureError, transaction.commitError].contains { $0.map(isUnavailable) ?? false }
        }
        if let psql = error as? PSQLError {
            switch psql.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
                return true
            case .server:
                // Class 08: connection exception; 57P01-57P03: the server is shutting down or starting;
                // 53300: too many connections.
                let state = psql.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300"].contains(state)
            default:
                return false
            }
        }
        // The pool's own error type (`ConnectionPoolError`: circuit breaker tripped, pool shut down)
        // lives in a module PostgresNIO does not export.
        return String(describing: type(of: error)) == "ConnectionPoolError"
    }

    /// One line for a log: for PostgreSQL errors the SQLSTATE, the server's message and the
    /// statement, never the bound values (nor the server's detail line, which can quote a row).
    public static func describe(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError {
            let parts: [(String, (any Error)?)] = [
                ("begin", transaction.beginError), ("transaction", transaction.closureError), ("commit", transaction.commitError),
                ("rollback", transaction.rollbackError),
            ]
            return parts.compactMap { name, error in error.map { "\(name): \(describe($0))" } }.joined(separator: "; ")
        }
        guard let psql = error as? PSQLError else { return "\(error)" }
        var text = "PostgreSQL \(psql.code)"
        if let info = psql.serverInfo {
            if let state = info[.sqlState] { text += " SQLSTATE \(state)" }
            if let message = info[.message] { text += ": \(message)" }
        }
        if let underlying = psql.underlying { text += ": \(underlying)" }
        if let query = psql.query {
            let statement = query.sql.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(
                separator: " ")
            text += " in statement: \(statement.prefix(300))"
        }
        return text
    }
}
