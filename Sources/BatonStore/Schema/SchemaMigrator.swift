import Logging
import PostgresNIO

/// Brings the `baton` schema up to the newest version this binary knows.
///
/// Safe when several replicas start at once: everything runs in one transaction that first takes a
/// transaction-scoped advisory lock, so one replica migrates while the others wait, then find
/// nothing left to do. The lock goes with the transaction, so a replica that dies mid-migration
/// releases it and leaves no partial schema behind (DDL is transactional in PostgreSQL).
public struct SchemaMigrator: Sendable {
    /// The advisory lock key every Baton replica agrees on ("baton" in ASCII).
    static let lockKey: Int64 = 0x6261_746F_6E

    public var migrations: [Migration]

    public init(migrations: [Migration] = Migration.all) {
        self.migrations = migrations
    }

    /// Applies every pending migration.
    /// - Returns: What was applied, and whether the database is ahead of this binary.
    /// - Throws: ``MigrationError`` when an applied migration differs from this binary's copy;
    ///   database errors as PostgresNIO reports them.
    @discardableResult
    public func migrate(_ client: PostgresClient, logger: Logger) async throws -> MigrationReport {
        let migrations = self.migrations.sorted { $0.version < $1.version }
        return try await client.withStoreTransaction(logger: logger) { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
            try await connection.run("CREATE SCHEMA IF NOT EXISTS baton", logger: logger)
            try await connection.run(
                """
                CREATE TABLE IF NOT EXISTS baton.schema_migrations (
                    version     integer     PRIMARY KEY,
                    name        text        NOT NULL,
                    checksum    text        NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
                logger: logger
            )
            var applied: [Int: String] = [:]
            let rows = try await connection.run("SELECT version, checksum FROM baton.schema_migrations", logger: logger)
            for try await (version, checksum) in rows.decode((Int, String).self) { applied[version] = checksum }

            for migration in migrations {
                if let checksum = applied[migration.version], checksum != migration.checksum {
                    throw MigrationError.checksumMismatch(version: migration.version, name: migration.name)
                }
            }
            var report = MigrationReport(
                applied: [],
                newerVersionsInDatabase: applied.keys.filter { $0 > (migrations.last?.version ?? 0) }.sorted()
            )
            for migration in migrations where applied[migration.version] == nil {
                logger.info(
                    "applying schema migration",
                    metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
                for statement in migration.statements {
                    try await connection.run(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.run(
                    """
                    INSERT INTO baton.schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """,
                    logger: logger
                )
                report.applied.append(migration.version)
            }
            return report
        }
    }
}

/// The outcome of ``SchemaMigrator/migrate(_:logger:)``.
public struct MigrationReport: Sendable, Equatable {
    /// The versions applied by this call (empty when the schema was already current).
    public var applied: [Int]
    /// Versions recorded in the database that this binary does not know: a newer Baton migrated it.
    /// Migrations only ever add, so an older replica keeps working during a rolling upgrade; the
    /// caller logs a warning.
    public var newerVersionsInDatabase: [Int]
}

/// The database's schema cannot be trusted by this binary.
public enum MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A migration recorded as applied is not the one this binary carries: someone edited a released
    /// migration, or two different builds claim the same version.
    case checksumMismatch(version: Int, name: String)

    public var description: String {
        switch self {
        case .checksumMismatch(let version, let name):
            "schema migration \(version) (\(name)) was applied with different statements than this build carries; "
                + "released migrations must never change: add a new migration instead"
        }
    }
}
