import BatonStore
import BatonTransport
import CNATS
import Logging
import PostgresNIO
import Testing

/// The servers `scripts/test` provides are real and usable: PostgreSQL 15+ through PostgresNIO, and
/// a JetStream-enabled nats-server through libnats.
@Suite("Test servers")
struct ServersTests {
    @Test("PostgreSQL answers through PostgresClient, and is version 15 or later")
    func postgres() async throws {
        let url = try DatabaseURL(try TestServers.databaseURL)
        #expect(url.host == "127.0.0.1")
        let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: Logger(label: "test"))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            let rows = try await client.query("SELECT current_setting('server_version_num')::int, current_database()")
            for try await (version, database) in rows.decode((Int, String).self) {
                #expect(version >= 150_000)
                #expect(database == url.database)
            }
            group.cancelAll()
        }
    }

    @Test("nats-server accepts a libnats connection and has JetStream enabled")
    func natsJetStream() throws {
        let url = try TestServers.natsURL
        #expect(NATSLibrary.version.hasPrefix("3."))
        var connection: OpaquePointer?
        #expect(natsConnection_ConnectTo(&connection, url) == NATS_OK)
        defer { natsConnection_Destroy(connection) }
        var jetStream: OpaquePointer?
        #expect(natsConnection_JetStream(&jetStream, connection, nil) == NATS_OK)
        defer { jsCtx_Destroy(jetStream) }
        var account: UnsafeMutablePointer<jsAccountInfo>?
        var jetStreamError = jsErrCode(0)
        #expect(js_GetAccountInfo(&account, jetStream, nil, &jetStreamError) == NATS_OK, "JetStream is not enabled")
        jsAccountInfo_Destroy(account)
    }

    @Test("database URLs are parsed, and bad ones say what is wrong")
    func databaseURLs() throws {
        let url = try DatabaseURL("postgres://app:p%40ss@db.local:6543/payments?sslmode=require")
        #expect(
            url == DatabaseURL(host: "db.local", port: 6543, username: "app", password: "p@ss", database: "payments", requiresTLS: true))
        #expect(throws: DatabaseURLError.self) { try DatabaseURL("mysql://u@h/db") }
        #expect(throws: DatabaseURLError.self) { try DatabaseURL("postgres://u@h") }
        #expect(throws: DatabaseURLError.self) { try DatabaseURL("postgres://h/db") }
    }
}
