import Foundation
import PostgresNIO

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database`), parsed into the
/// configuration PostgresNIO's `PostgresClient` needs.
///
/// Baton takes its database from one URL (`BATON_DATABASE_URL`) so that operators, scripts and tests
/// configure it the same way.
public struct DatabaseURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Whether TLS is required (`sslmode=require`, `verify-ca` or `verify-full`).
    public var requiresTLS: Bool

    public init(host: String, port: Int, username: String, password: String?, database: String, requiresTLS: Bool) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requiresTLS = requiresTLS
    }

    /// Parses a `postgres://` or `postgresql://` URL.
    /// - Parameter string: The URL text.
    /// - Throws: ``DatabaseURLError`` naming what is wrong.
    public init(_ string: String) throws(DatabaseURLError) {
        guard let components = URLComponents(string: string) else {
            throw DatabaseURLError("not a URL: expected postgres://user:password@host:port/database")
        }
        guard components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw DatabaseURLError("scheme must be postgres:// or postgresql://, got '\(components.scheme ?? "")'")
        }
        guard let host = components.host, !host.isEmpty else {
            throw DatabaseURLError("missing host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw DatabaseURLError("missing user name")
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty else {
            throw DatabaseURLError("missing database name (the URL path)")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = path
        let sslMode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
        self.requiresTLS = ["require", "verify-ca", "verify-full"].contains(sslMode)
    }

    /// The `PostgresClient` configuration for this URL.
    public func clientConfiguration() -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS = requiresTLS ? .require(.makeClientConfiguration()) : .disable
        return PostgresClient.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: tls
        )
    }
}

/// A database URL that cannot be used, with the reason.
public struct DatabaseURLError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    init(_ description: String) { self.description = "invalid database URL: \(description)" }
}
