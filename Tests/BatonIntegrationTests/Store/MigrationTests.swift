import BatonStore
import Logging
import PostgresNIO
import Testing

@Suite("Schema migrations")
struct MigrationTests {
    @Test("migrating twice applies every migration once, and records it")
    func idempotent() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            let migrator = SchemaMigrator()
            let first = try await migrator.migrate(client, logger: StoreFixture.logger)
            #expect(first.applied == Migration.all.map(\.version))
            let second = try await migrator.migrate(client, logger: StoreFixture.logger)
            #expect(second.applied.isEmpty)
            #expect(second.newerVersionsInDatabase.isEmpty)
            let rows = try await client.query("SELECT version, checksum FROM baton.schema_migrations ORDER BY version")
            var recorded: [Int: String] = [:]
            for try await (version, checksum) in rows.decode((Int, String).self) { recorded[version] = checksum }
            #expect(recorded == Dictionary(uniqueKeysWithValues: Migration.all.map { ($0.version, $0.checksum) }))
        }
    }

    @Test("the epoch conversion every saga write calls is inlined into the query, and gives the same instant")
    func epochConversionInlined() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            try await SchemaMigrator().migrate(client, logger: StoreFixture.logger)
            // A call PostgreSQL does not inline shows up by name in the plan.
            var plan = ""
            let rows = try await client.query("EXPLAIN VERBOSE SELECT baton.from_epoch_us(x) FROM generate_series(1::bigint, 2) AS x")
            for try await line in rows.decode(String.self) { plan += line + "\n" }
            #expect(!plan.contains("from_epoch_us"), "not inlined:\n\(plan)")
            let instant: Int64 = 1_800_000_000_123_456
            let same = try await client.query(
                "SELECT baton.from_epoch_us(\(instant)) = 'epoch'::timestamptz + \(instant) * interval '1 microsecond'")
            for try await equal in same.decode(Bool.self) { #expect(equal) }
        }
    }

    @Test("replicas starting at once: one migrates, the others wait and find nothing to do")
    func concurrent() async throws {
        let url = try await StoreFixture.createDatabase()
        // Separate clients, as separate replicas would have.
        let reports = try await withThrowingTaskGroup(of: MigrationReport.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await StoreFixture.withClient(url) { client in
                        try await SchemaMigrator().migrate(client, logger: StoreFixture.logger)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.filter { !$0.applied.isEmpty }.count == 1)
        #expect(reports.flatMap(\.applied).sorted() == Migration.all.map(\.version))
    }

    @Test("an edited released migration stops start-up with a clear error")
    func checksumMismatch() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            try await SchemaMigrator().migrate(client, logger: StoreFixture.logger)
            var edited = Migration.all
            edited[0].statements.append("CREATE TABLE baton.sneaky (id int)")
            await #expect(throws: MigrationError.checksumMismatch(version: 1, name: edited[0].name)) {
                try await SchemaMigrator(migrations: edited).migrate(client, logger: StoreFixture.logger)
            }
        }
    }

    @Test("a failing migration leaves no part of itself behind, and the next run applies it cleanly")
    func atomic() async throws {
        let url = try await StoreFixture.createDatabase()
        try await StoreFixture.withClient(url) { client in
            try await SchemaMigrator().migrate(client, logger: StoreFixture.logger)
            let next = Migration.all.count + 1
            let broken = Migration(
                version: next, name: "broken", statements: ["CREATE TABLE baton.half (id int)", "SELECT no_such_function()"])
            await #expect(throws: PSQLError.self) {
                try await SchemaMigrator(migrations: Migration.all + [broken]).migrate(client, logger: StoreFixture.logger)
            }
            let tables = try await client.query(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'baton' AND table_name = 'half'")
            for try await count in tables.decode(Int.self) { #expect(count == 0) }

            // An older binary against a newer schema keeps running, and says so.
            let fixed = Migration(version: next, name: "fixed", statements: ["CREATE TABLE baton.whole (id int)"])
            let applied = try await SchemaMigrator(migrations: Migration.all + [fixed]).migrate(client, logger: StoreFixture.logger)
            #expect(applied.applied == [next])
            let older = try await SchemaMigrator().migrate(client, logger: StoreFixture.logger)
            #expect(older.newerVersionsInDatabase == [next])
        }
    }
}
