import Foundation
import Testing

/// What `baton serve` refuses before it connects to anything, and `baton token`.
@Suite("baton serve access and baton token")
struct ServeAccessCommandTests {
    let runner = WorkflowsValidateCommandTests()
    let nowhere = ["--database-url", "postgres://baton@127.0.0.1:1/baton", "--nats-url", "nats://127.0.0.1:1"]

    @Test("without credentials, serve refuses any address but loopback unless told it is insecure")
    func loopbackOnly() throws {
        for address in ["0.0.0.0:0", ":8080", "192.0.2.10:8080", "[::]:8080"] {
            let run = try runner.baton(["serve", "--http", address] + nowhere)
            #expect(run.status != 0, "\(address)")
            #expect(run.output.contains("refusing to serve the API without credentials"), "\(address): \(run.output)")
        }
    }

    @Test("a stream replica count JetStream cannot take stops serve before it connects")
    func streamReplicas() throws {
        for value in ["0", "6", "three"] {
            let run = try runner.baton(["serve"] + nowhere, environment: ["BATON_NATS_STREAM_REPLICAS": value])
            #expect(run.status != 0, "\(value)")
            #expect(run.output.contains("BATON_NATS_STREAM_REPLICAS must be 1 to 5"), "\(value): \(run.output)")
        }
    }

    @Test("a retention setting that cannot be used stops serve before it connects, saying what is wrong")
    func badRetention() throws {
        let cases: [(arguments: [String], environment: [String: String], message: String)] = [
            (["--retention", "30"], [:], "--retention): '30' is not an age"),
            ([], ["BATON_RETENTION": "30d,30d"], "two rules without a workflow name"),
            ([], ["BATON_RETENTION": "funds transfer=1d"], "is not a workflow name"),
            (["--archive", "/tmp/baton-archive-unused"], [:], "retention keeps every saga forever: set BATON_RETENTION too"),
            (
                ["--retention", "30d", "--archive", "/proc/baton-archive"], [:],
                "BATON_ARCHIVE_DIR (--archive): cannot use /proc/baton-archive"
            ),
            (["--retention", "30d"], ["BATON_RETENTION_BATCH": "0"], "BATON_RETENTION_BATCH must be a whole number from 1 to 10000"),
            (["--retention", "30d"], ["BATON_RETENTION_INTERVAL": "5"], "BATON_RETENTION_INTERVAL must be a duration"),
        ]
        for (arguments, environment, message) in cases {
            let run = try runner.baton(["serve"] + arguments + nowhere, environment: environment)
            #expect(run.status != 0, "\(arguments) \(environment)")
            #expect(run.output.contains(message), "\(arguments) \(environment): \(run.output)")
            #expect(!run.output.contains("database"), "refused before connecting: \(run.output)")
        }
    }

    @Test("a credentials file that cannot be used stops serve with the entry named")
    func badCredentials() throws {
        let directory = try runner.temporaryDirectory(["auth.yaml": "tokens:\n  - name: ci\n    sha256: nothex\n    scopes: [operator]\n"])
        let run = try runner.baton(["serve", "--auth", directory.appendingPathComponent("auth.yaml").path] + nowhere)
        #expect(run.status != 0)
        #expect(run.output.contains("tokens[0].sha256"), "\(run.output)")
    }

    @Test("baton token prints a token once and an entry that holds only its digest")
    func token() throws {
        let run = try runner.baton(["token", "--name", "deployer", "--scopes", "workflows:write", "sagas:read"])
        #expect(run.status == 0)
        let token = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("token") }?.split(separator: " ").last)
        #expect(token.hasPrefix("baton_"))
        #expect(run.output.contains("  - name: deployer\n    sha256: "))
        #expect(run.output.contains("scopes: [workflows:write, sagas:read]"))
        #expect(run.output.components(separatedBy: String(token)).count == 2, "the token is printed once")
        #expect(try runner.baton(["token", "--name", "x", "--scopes", "everything"]).status != 0)
    }
}
