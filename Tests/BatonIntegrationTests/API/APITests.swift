import BatonAPI
import BatonCore
import BatonEngine
import BatonStore
import BatonTransport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import Yams

/// The HTTP API against the real store (a database of its own). Requests go through the router;
/// nothing here needs NATS (submitting a saga only writes its first command to the outbox).
@Suite("HTTP API")
struct APITests {
    static func withAPI(
        access: APIAccessPolicy = .open,
        bodyLimit: Int = 1 << 20,
        corsOrigin: String? = nil,
        ready: Bool = true,
        replacesUnusedVersions: Bool = false,
        _ body: @escaping @Sendable (any TestClientProtocol, SagaStore) async throws -> Void
    ) async throws {
        try await StoreFixture.withStore { store in
            let runner = SagaRunner(store: store)
            var configuration = BatonAPI.Configuration(bodyLimit: bodyLimit, access: access, corsOrigin: corsOrigin)
            configuration.replacesUnusedVersions = replacesUnusedVersions
            let api = BatonAPI(
                store: store, runner: runner, configuration: configuration, readiness: { ["postgres": true, "nats": ready] })
            let app = Application(router: api.router())
            try await app.test(.router) { client in try await body(client, store) }
        }
    }

    static func json(_ response: TestResponse) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(buffer: response.body))
    }

    static func submit(_ client: some TestClientProtocol, _ body: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await post(client, "/v1/sagas", body, headers: headers)
    }

    static func post(
        _ client: some TestClientProtocol, _ uri: String, _ body: String, headers: HTTPFields = [:],
        contentType: String = "application/json"
    ) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = contentType
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    static let validSubmission = #"{"workflow":"store-test","input":{"amount":100}}"#

    @Test("submitting starts a saga; the same Idempotency-Key replays it; another body with the key is a 409")
    func submit() async throws {
        try await Self.withAPI { client, _ in
            var headers = HTTPFields()
            headers[HTTPField.Name("Idempotency-Key")!] = "order-9"
            headers[HTTPField.Name("X-Correlation-ID")!] = "req-1"
            let first = try await Self.submit(client, Self.validSubmission, headers: headers)
            #expect(first.status == .accepted)
            let body = try Self.json(first)
            let id = try #require(body.value(at: ["id"])?.stringValue)
            #expect(body.value(at: ["status"]) == "PROCESSING")
            #expect(first.headers[.location] == "/v1/sagas/\(id)")

            let replay = try await Self.submit(client, Self.validSubmission, headers: headers)
            #expect(replay.status == .accepted)
            #expect(try Self.json(replay).value(at: ["id"])?.stringValue == id)
            #expect(replay.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")

            let conflict = try await Self.submit(client, #"{"workflow":"store-test","input":{"amount":5}}"#, headers: headers)
            #expect(conflict.status == .conflict)
            #expect(conflict.headers[.contentType] == "application/problem+json")

            let saga = try await client.execute(uri: "/v1/sagas/\(id)", method: .get)
            #expect(saga.status == .ok)
            let stored = try Self.json(saga)
            #expect(stored.value(at: ["correlation_id"]) == "req-1")
            // Every response carries the correlation id: the caller's, or a generated one, which a
            // saga submitted without one stores.
            #expect(first.headers[HTTPField.Name("X-Correlation-ID")!] == "req-1")
            let anonymous = try await Self.submit(client, #"{"workflow":"store-test","input":{"amount":7}}"#, headers: [:])
            let generated = try #require(anonymous.headers[HTTPField.Name("X-Correlation-ID")!])
            #expect(generated.count == 36)
            let anonymousID = try #require(try Self.json(anonymous).value(at: ["id"])?.stringValue)
            let anonymousSaga = try Self.json(try await client.execute(uri: "/v1/sagas/\(anonymousID)", method: .get))
            #expect(anonymousSaga.value(at: ["correlation_id"])?.stringValue == generated)
            #expect(stored.value(at: ["steps", "0", "status"]) == "RUNNING")
            #expect(stored.value(at: ["steps", "0", "attempt"]) == 1)

            let history = try Self.json(try await client.execute(uri: "/v1/sagas/\(id)/history", method: .get))
            #expect(history.value(at: ["entries", "0", "kind"]) == "saga_started")
            #expect(history.value(at: ["entries", "0", "seq"]) == 1)
        }
    }

    @Test("bad input gets a 4xx problem that says what is wrong, never a 5xx")
    func problems() async throws {
        try await Self.withAPI(bodyLimit: 512) { client, _ in
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("{\"workflow\":", .badRequest, "not valid JSON"),
                ("[1,2]", .badRequest, "JSON object"),
                (#"{"input":{}}"#, .badRequest, "\"workflow\""),
                (#"{"workflow":"store-test","input":{},"extra":1}"#, .badRequest, "unknown field"),
                (#"{"workflow":"store-test","version":0}"#, .badRequest, "an integer from 1 to"),
                (#"{"workflow":"nope","input":{}}"#, .unprocessableContent, "no workflow named 'nope'"),
                (#"{"workflow":"store-test","version":7,"input":{"amount":1}}"#, .unprocessableContent, "no version 7"),
                (#"{"workflow":"store-test","input":{"amount":"ten"}}"#, .unprocessableContent, "amount"),
                (
                    "{\"workflow\":\"store-test\",\"input\":{\"pad\":\"" + String(repeating: "x", count: 600) + "\"}}", .contentTooLarge,
                    "limited to 512"
                ),
                (#"{"workflow":"store-test","input":{"amount":1,"note":"a\u0000b"}}"#, .unprocessableContent, "NUL"),
            ]
            for (body, status, mention) in cases {
                let response = try await Self.submit(client, body)
                #expect(response.status == status, "\(body.prefix(60))")
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try Self.json(response)
                #expect(problem.value(at: ["status"]) == .integer(Int64(status.code)))
                #expect(problem.value(at: ["detail"])?.stringValue?.contains(mention) == true, "\(problem)")
            }
            let invalid = try Self.json(try await Self.submit(client, #"{"workflow":"store-test","input":{}}"#))
            #expect(invalid.value(at: ["errors", "0"])?.stringValue?.contains("amount") == true)

            let gets: [(String, HTTPResponse.Status)] = [
                ("/v1/sagas/0190f5a4-7b1c-7d2e-8f00-000000000000", .notFound), ("/v1/sagas/not-an-id", .notFound),
                ("/v1/sagas?cursor=garbage", .badRequest), ("/v1/sagas?status=DONE", .badRequest), ("/v1/sagas?limit=0", .badRequest),
                ("/v1/sagas?stuck=forever", .badRequest), ("/v1/sagas?created_after=yesterday", .badRequest),
                ("/v1/workflows/nope", .notFound), ("/v1/nothing-here", .notFound),
            ]
            for (uri, status) in gets {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == status, "\(uri)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(uri)")
            }
            let wrongMethod = try await client.execute(uri: "/v1/workflows", method: .delete)
            #expect(wrongMethod.status.code >= 400 && wrongMethod.status.code < 500)
        }
    }

    @Test("lists filter and page with a cursor")
    func list() async throws {
        try await Self.withAPI { client, _ in
            var ids: [String] = []
            for _ in 0..<3 {
                ids.append(try #require(try Self.json(try await Self.submit(client, Self.validSubmission)).value(at: ["id"])?.stringValue))
            }
            let first = try Self.json(try await client.execute(uri: "/v1/sagas?limit=2&status=PROCESSING", method: .get))
            let cursor = try #require(first.value(at: ["next_cursor"])?.stringValue)
            let second = try Self.json(try await client.execute(uri: "/v1/sagas?limit=2&status=PROCESSING&cursor=\(cursor)", method: .get))
            #expect(second.value(at: ["next_cursor"]) == .null)
            let listed = [first, second].flatMap { page -> [String] in
                guard case .array(let sagas)? = page.value(at: ["sagas"]) else { return [] }
                return sagas.compactMap { $0.value(at: ["id"])?.stringValue }
            }
            #expect(listed == ids.reversed())
            let stuck = try Self.json(try await client.execute(uri: "/v1/sagas?stuck=suspended,compensating", method: .get))
            #expect(stuck.value(at: ["sagas"]) == [])
            let none = try Self.json(try await client.execute(uri: "/v1/sagas?workflow=other", method: .get))
            #expect(none.value(at: ["sagas"]) == [])
        }
    }

    @Test("cancel compensates before the pivot and is a 409 when finished; operator actions need a suspended saga")
    func cancelAndActions() async throws {
        try await Self.withAPI { client, _ in
            let id = try #require(try Self.json(try await Self.submit(client, Self.validSubmission)).value(at: ["id"])?.stringValue)
            let cancelled = try await Self.post(client, "/v1/sagas/\(id)/cancel", #"{"reason":"changed my mind"}"#)
            #expect(cancelled.status == .accepted)
            #expect(try Self.json(cancelled).value(at: ["status"]) == "COMPENSATING")
            // Who asked and why are on the saga at once, in `get` and in `list`.
            let cancellation = try Self.json(cancelled).value(at: ["cancellation"])
            #expect(cancellation?.value(at: ["reason"]) == "changed my mind")
            #expect(cancellation?.value(at: ["at"])?.stringValue != nil)
            let listed = try Self.json(try await client.execute(uri: "/v1/sagas?status=COMPENSATING", method: .get))
            guard case .array(let sagas)? = listed.value(at: ["sagas"]) else {
                Issue.record("no saga list")
                return
            }
            #expect(sagas.first?.value(at: ["cancellation", "reason"]) == "changed my mind")

            let action = try await Self.post(client, "/v1/sagas/\(id)/actions", #"{"action":"resolve","reason":"checked"}"#)
            #expect(action.status == .conflict)
            let noReason = try await Self.post(client, "/v1/sagas/\(id)/actions", #"{"action":"resolve"}"#)
            #expect(noReason.status == .badRequest)
            let unknown = try await Self.post(client, "/v1/sagas/\(id)/actions", #"{"action":"explode","reason":"x"}"#)
            #expect(unknown.status == .badRequest)
        }
    }

    @Test("hostile requests get a 4xx problem naming what is wrong, and the server stays up")
    func hostileRequests() async throws {
        try await Self.withAPI { client, _ in
            func expectProblem(_ response: TestResponse, _ status: HTTPResponse.Status, _ mention: String, _ label: String) throws {
                #expect(response.status == status, "\(label)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(label)")
                let detail = try Self.json(response).value(at: ["detail"])?.stringValue ?? ""
                #expect(detail.contains(mention), "\(label): \(detail)")
            }
            let submitted = try await Self.submit(client, Self.validSubmission)
            let id = try #require(try Self.json(submitted).value(at: ["id"])?.stringValue)

            // Bodies: strict JSON, declared as such.
            try expectProblem(
                try await Self.submit(client, #"{"workflow":"store-test","input":{"amount":1,"amount":100000}}"#), .unprocessableContent,
                "'amount' appears twice", "duplicate key")
            try expectProblem(
                try await Self.submit(client, #"{"workflow":"store-test","input":{"amount":9223372036854775808}}"#), .unprocessableContent,
                "beyond the 64-bit range", "integer beyond int64")
            try expectProblem(
                try await Self.post(client, "/v1/sagas", Self.validSubmission, contentType: "text/plain"), .unsupportedMediaType,
                "application/json", "text/plain submit")
            try expectProblem(
                try await Self.post(client, "/v1/workflows", StoreFixture.definitionSource, contentType: "text/plain"),
                .unsupportedMediaType,
                "application/yaml", "text/plain registration")
            try expectProblem(
                try await Self.post(client, "/v1/sagas/\(id)/cancel", #"{"reason":"a\u0000b"}"#), .unprocessableContent, "NUL",
                "NUL in a reason")
            try expectProblem(
                try await Self.post(client, "/v1/sagas/\(id)/cancel", #"{"reason":42}"#), .badRequest, "must be a string", "reason type")

            // Definitions: the durations that crashed the engine, and an alias bomb.
            let far = StoreFixture.definitionSource.replacingOccurrences(of: "deadline: 1h", with: "deadline: 50000000000d")
            try expectProblem(
                try await Self.post(client, "/v1/workflows", far, contentType: "application/yaml"), .unprocessableContent,
                "deadline: bad duration '50000000000d': longer than the maximum of 365d", "far deadline")
            let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            try expectProblem(
                try await Self.post(client, "/v1/workflows", bomb, contentType: "application/yaml"), .unprocessableContent,
                "anchors and aliases", "alias bomb")

            // Query strings and headers.
            let gets: [(String, String)] = [
                ("/v1/sagas?workflow=%00", "workflow must be a workflow name"),
                ("/v1/sagas?stuck=running:50000000000d", "maximum of 365d"),
                ("/v1/sagas?stuck=awaiting:50000000000d", "maximum of 365d"),
                ("/v1/sagas?stuck=running:5", "the duration '5'"),
                (
                    "/v1/sagas?cursor=\(Data("v1:9223372036854775807:0190f5a4-7b1c-7d2e-8f00-000000000000".utf8).base64EncodedString())",
                    "cursor"
                ),
                ("/v1/sagas/\(id)?wait=50000000000d", "maximum of 365d"),
            ]
            for (uri, mention) in gets {
                try expectProblem(try await client.execute(uri: uri, method: .get), .badRequest, mention, uri)
            }
            #expect(try await client.execute(uri: "/v1/workflows/%00", method: .get).status == .notFound)
            var longID = HTTPFields()
            longID[HTTPField.Name("X-Correlation-ID")!] = String(repeating: "c", count: 256)
            try expectProblem(
                try await client.execute(uri: "/v1/sagas", method: .get, headers: longID), .badRequest, "X-Correlation-ID", "long id")

            // A known path with another method: 405 naming the methods it has.
            for method in [HTTPRequest.Method.delete, .put, .head, .options] {
                let response = try await client.execute(uri: "/v1/sagas/\(id)", method: method)
                #expect(response.status == .methodNotAllowed, "\(method)")
                #expect(response.headers[.allow] == "GET", "\(method)")
            }
            #expect(try await client.execute(uri: "/v1/workflows", method: .delete).headers[.allow] == "GET, POST")
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }

    @Test("workflows are listed, shown by version, and registered from YAML")
    func workflows() async throws {
        try await Self.withAPI { client, _ in
            let listed = try Self.json(try await client.execute(uri: "/v1/workflows", method: .get))
            #expect(listed.value(at: ["workflows", "0", "name"]) == "store-test")
            var yaml = HTTPFields()
            yaml[.contentType] = "application/yaml"
            let v2 = StoreFixture.definitionSource.replacingOccurrences(of: "version: 1", with: "version: 2")
            let created = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: v2))
            #expect(created.status == .created)
            #expect(try Self.json(created).value(at: ["version"]) == 2)
            let again = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: v2))
            #expect(again.status == .ok)
            let changed = v2.replacingOccurrences(of: "timeout: 5s", with: "timeout: 6s")
            let conflict = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: changed))
            #expect(conflict.status == .conflict)
            let invalid = try await client.execute(
                uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: "name: x\nversion: 1\nsteps: []\nbogus: 1\n"))
            #expect(invalid.status == .unprocessableContent)
            #expect(try Self.json(invalid).value(at: ["errors", "0"]) != nil)
            let versions = try Self.json(try await client.execute(uri: "/v1/workflows/store-test", method: .get))
            #expect(versions.value(at: ["versions", "0", "version"]) == 2)
            #expect(versions.value(at: ["versions", "1", "version"]) == 1)
        }
    }

    @Test("a registered workflow is simulated: the report, replayed by its seed; bad requests are 400s, unknown workflows 404s")
    func simulate() async throws {
        try await Self.withAPI { client, _ in
            let body = #"{"runs": 300, "seed": 7, "faults": ["inventory:timeout=0.3"], "accept": ["retry-budget-shorter-than-timeout"]}"#
            let response = try await Self.post(client, "/v1/workflows/store-test/simulate", body)
            #expect(response.status == .ok)
            let report = try Self.json(response)
            #expect(report.value(at: ["workflow"]) == "store-test" && report.value(at: ["version"]) == 1)
            #expect(report.value(at: ["runs"]) == 300 && report.value(at: ["seed"]) == "7" && report.value(at: ["passed"]) == .bool(true))
            let findings = report.value(at: ["findings"])?.arrayValue ?? []
            // The fixture's release reads the reservation, which is null when reserving timed out.
            let null = try #require(findings.first { $0.value(at: ["kind"]) == "null-in-compensation" })
            #expect(null.value(at: ["step"]) == "reserve" && null.value(at: ["accepted"]) == .bool(false))
            #expect((null.value(at: ["schedule"])?.arrayValue?.count ?? 0) >= 2)
            let budget = try #require(findings.first { $0.value(at: ["kind"]) == "retry-budget-shorter-than-timeout" })
            #expect(budget.value(at: ["accepted"]) == .bool(true))
            let again = try await Self.post(client, "/v1/workflows/store-test/simulate", body)
            #expect(try Self.json(again) == report)

            let empty = try await client.execute(uri: "/v1/workflows/store-test/simulate", method: .post)
            #expect(empty.status == .ok)
            #expect(try Self.json(empty).value(at: ["runs"]) == 500)
            #expect(try await Self.post(client, "/v1/workflows/nope/simulate", "{}").status == .notFound)
            #expect(try await Self.post(client, "/v1/workflows/store-test/simulate", #"{"version": 9}"#).status == .notFound)
            for bad in [
                #"{"runs": 5000}"#, #"{"faults": ["inventory:explode=1"]}"#, #"{"seed": -1}"#, #"{"runs": 10, "colour": "red"}"#,
                #"{"accept": ["all"]}"#, #"[1]"#,
            ] {
                let refused = try await Self.post(client, "/v1/workflows/store-test/simulate", bad)
                #expect(refused.status == .badRequest, "\(bad)")
                #expect(refused.headers[.contentType] == "application/problem+json", "\(bad)")
            }
            let explained = try Self.json(
                try await Self.post(client, "/v1/workflows/store-test/simulate", #"{"faults": ["inventory:explode=1"]}"#))
            #expect(explained.value(at: ["detail"])?.stringValue?.contains("the kinds are fail") == true)
        }
    }

    @Test("in development, changed content replaces a version no saga has run; once one has, it is a 409 naming the next version")
    func developmentReplacesUnusedVersions() async throws {
        try await Self.withAPI(replacesUnusedVersions: true) { client, _ in
            var yaml = HTTPFields()
            yaml[.contentType] = "application/yaml"
            let v2 = StoreFixture.definitionSource.replacingOccurrences(of: "version: 1", with: "version: 2")
            #expect(
                try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: v2)).status
                    == .created)
            let described = v2.replacingOccurrences(of: "deadline: 1h", with: "description: moves stock and money\ndeadline: 1h")
            let replaced = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: described))
            #expect(replaced.status == .ok)
            #expect(try Self.json(replaced).value(at: ["description"]) == "moves stock and money")
            let shown = try Self.json(try await client.execute(uri: "/v1/workflows/store-test", method: .get))
            #expect(shown.value(at: ["versions", "0", "description"]) == "moves stock and money")

            // A saga runs version 2: from now on it is what that saga keeps to.
            let submitted = try await Self.submit(client, #"{"workflow":"store-test","input":{"amount":100}}"#)
            #expect(submitted.status == .accepted)
            let changed = described.replacingOccurrences(of: "timeout: 5s", with: "timeout: 6s")
            let refused = try await client.execute(uri: "/v1/workflows", method: .post, headers: yaml, body: ByteBuffer(string: changed))
            #expect(refused.status == .conflict)
            let problem = try Self.json(refused)
            #expect(problem.value(at: ["type"]) == "https://baton.dev/problems/version-in-use")
            #expect(problem.value(at: ["detail"])?.stringValue?.contains("register the change as version 3") == true)
        }
    }

    @Test("while PostgreSQL cannot be reached, requests get 503 with Retry-After, not 500")
    func databaseUnavailable() async throws {
        // A real client of a database that is not there: nothing listens on the port.
        let nowhere = try DatabaseURL("postgres://baton@127.0.0.1:\(try LoopbackPort.free())/baton")
        try await StoreFixture.withClient(nowhere, maximumConnections: 2) { client in
            let store = SagaStore(client: client, logger: StoreFixture.logger)
            let api = BatonAPI(
                store: store, runner: SagaRunner(store: store),
                configuration: .init(requestTimeout: .seconds(2)), readiness: { ["postgres": false, "nats": true] })
            try await Application(router: api.router()).test(.router) { client in
                for (method, uri, body) in [
                    (HTTPRequest.Method.post, "/v1/sagas", Self.validSubmission), (.get, "/v1/sagas", ""),
                    (.get, "/v1/workflows", ""),
                ] {
                    var headers = HTTPFields()
                    headers[.contentType] = "application/json"
                    let response = try await client.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: body))
                    #expect(response.status == .serviceUnavailable, "\(method) \(uri)")
                    #expect(response.headers[.retryAfter] == "5", "\(method) \(uri)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(method) \(uri)")
                }
            }
        }
    }

    @Test("no CORS unless an origin is configured; then only that origin, with a preflight")
    func cors() async throws {
        let preflight: HTTPFields = [.origin: "https://console.example.com", .accessControlRequestMethod: "POST"]
        try await Self.withAPI { client, _ in
            let response = try await client.execute(uri: "/v1/sagas", method: .options, headers: preflight)
            #expect(response.headers[.accessControlAllowOrigin] == nil)
            let simple = try await client.execute(uri: "/v1/sagas", method: .get, headers: preflight)
            #expect(simple.headers[.accessControlAllowOrigin] == nil)
        }
        try await Self.withAPI(corsOrigin: "https://console.example.com") { client, _ in
            let response = try await client.execute(uri: "/v1/sagas", method: .options, headers: preflight)
            #expect(response.headers[.accessControlAllowOrigin] == "https://console.example.com")
            #expect(response.headers[.accessControlAllowHeaders]?.lowercased().contains("idempotency-key") == true)
            let simple = try await client.execute(uri: "/v1/sagas", method: .get, headers: preflight)
            #expect(simple.headers[.accessControlAllowOrigin] == "https://console.example.com")
        }
    }

    @Test("readiness is 503 while a dependency is unreachable")
    func readiness() async throws {
        try await Self.withAPI(ready: false) { client, _ in
            let response = try await client.execute(uri: "/readyz", method: .get)
            #expect(response.status == .serviceUnavailable)
            #expect(try Self.json(response).value(at: ["checks", "nats"]) == false)
        }
    }

    @Test("every route in docs/openapi.yaml is served, every served route is in it, with the same statuses")
    func openAPIMatchesRoutes() async throws {
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../../../docs/openapi.yaml")
        let document = try #require(try Yams.load(yaml: try String(contentsOf: spec, encoding: .utf8)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        var specified: [String: Set<Int>] = [:]
        for (path, operations) in paths {
            for (method, operation) in (operations as? [String: Any]) ?? [:] {
                let responses = ((operation as? [String: Any])?["responses"] as? [AnyHashable: Any]) ?? [:]
                specified["\(method.uppercased()) \(path)"] = Set(responses.keys.compactMap { Int("\($0)") })
            }
        }
        let served = Dictionary(uniqueKeysWithValues: BatonAPI.routes.map { ("\($0.method) \($0.path)", $0.statuses) })
        #expect(Set(specified.keys) == Set(served.keys))
        for (route, statuses) in served { #expect(specified[route] == statuses, "\(route)") }

        // And the router really has each of them: a request reaches a handler, not "no route".
        try await Self.withAPI { client, _ in
            for route in BatonAPI.routes {
                let uri = route.path.replacingOccurrences(of: "{id}", with: "0190f5a4-7b1c-7d2e-8f00-000000000000")
                    .replacingOccurrences(of: "{name}", with: "store-test")
                let response = try await client.execute(
                    uri: uri, method: HTTPRequest.Method(route.method)!, body: ByteBuffer(string: "{}"))
                let problem = try? Self.json(response).value(at: ["detail"])?.stringValue
                #expect(problem?.hasPrefix("no route") != true, "\(route.method) \(route.path)")
                #expect(response.status != .methodNotAllowed, "\(route.method) \(route.path)")
                #expect(route.statuses.contains(Int(response.status.code)), "\(route.method) \(route.path): \(response.status)")
            }
        }
    }
}

extension APITests {
    static let signalWorkflow = """
        name: signal-test
        version: 1
        steps:
          - { name: await-approval, signal: approval, timeout: 15m }
          - { name: reserve, participant: stock, action: reserve, compensate: { action: release } }
          - { name: await-payment, signal: payment-result, timeout: 15m }
          - { name: capture, participant: payments, action: capture, pivot: true }
        """

    @Test("a parent lists its child sagas and a child names its parent; the child's end completes the parent's step")
    func childLinks() async throws {
        try await Self.withAPI { client, _ in
            for workflow in [
                "name: kid\nversion: 1\nsteps:\n  - { name: wait, signal: go, timeout: 1m }\n",
                """
                name: parent
                version: 1
                steps:
                  - name: both
                    parallel:
                      - { name: spawn, workflow: kid, input: { n: '{{input.n}}' }, timeout: 1m }
                      - { name: note, signal: noted, timeout: 1m }
                """,
            ] {
                let registered = try await Self.post(client, "/v1/workflows", workflow, contentType: "application/yaml")
                #expect(registered.status == .created, "\(String(buffer: registered.body))")
            }
            let parent = try #require(
                try Self.json(try await Self.submit(client, #"{"workflow":"parent","input":{"n":7}}"#)).value(at: ["id"])?.stringValue)
            // The child starts right after the parent's commit.
            var shown = JSONValue.null
            for _ in 0..<200 {
                shown = try Self.json(try await client.execute(uri: "/v1/sagas/\(parent)", method: .get))
                if case .array(let children)? = shown.value(at: ["children"]), !children.isEmpty { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(shown.value(at: ["children", "0", "step"]) == "spawn")
            // Each step says what the workflow makes of it.
            #expect(shown.value(at: ["steps", "0", "kind"]) == "child" && shown.value(at: ["steps", "0", "workflow"]) == "kid")
            #expect(shown.value(at: ["steps", "0", "role"]) == "step")
            #expect(shown.value(at: ["steps", "0", "parallel"]) == ["group": "both", "branch": "spawn"])
            #expect(shown.value(at: ["steps", "1", "parallel"]) == ["group": "both", "branch": "note"])
            #expect(shown.value(at: ["children", "0", "workflow"]) == "kid")
            #expect(shown.value(at: ["parent"]) == .null)
            let child = try #require(shown.value(at: ["children", "0", "saga_id"])?.stringValue)
            #expect(shown.value(at: ["children", "0", "link"]) == .string("/v1/sagas/\(child)"))
            let childShown = try Self.json(try await client.execute(uri: "/v1/sagas/\(child)", method: .get))
            #expect(childShown.value(at: ["parent", "saga_id"]) == .string(parent))
            #expect(childShown.value(at: ["parent", "step"]) == "spawn")
            #expect(childShown.value(at: ["input"]) == ["n": 7])
            #expect(childShown.value(at: ["steps", "0", "kind"]) == "signal" && childShown.value(at: ["steps", "0", "signal"]) == "go")

            let sent = try await Self.post(client, "/v1/sagas/\(child)/signals/go", #"{"payload":{"ok":true}}"#)
            #expect(sent.status == .accepted)
            let noted = try await Self.post(client, "/v1/sagas/\(parent)/signals/noted", #"{"payload":{}}"#)
            #expect(noted.status == .accepted)
            for _ in 0..<200 {
                shown = try Self.json(try await client.execute(uri: "/v1/sagas/\(parent)", method: .get))
                if shown.value(at: ["status"]) == "COMPLETED" { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(shown.value(at: ["status"]) == "COMPLETED")
            #expect(shown.value(at: ["steps", "0", "output"]) == ["saga_id": .string(child), "steps": ["wait": ["ok": true]]])
            #expect(shown.value(at: ["children", "0", "status"]) == "COMPLETED")
        }
    }

    @Test("signals: consumed by the waiting step, kept when early, idempotent by key, refused with a reason")
    func signals() async throws {
        try await Self.withAPI { client, store in
            let registered = try await Self.post(client, "/v1/workflows", Self.signalWorkflow, contentType: "application/yaml")
            #expect(registered.status == .created, "\(String(buffer: registered.body))")
            let id = try #require(
                try Self.json(try await Self.submit(client, #"{"workflow":"signal-test","input":{}}"#)).value(at: ["id"])?.stringValue)
            func signal(_ name: String, _ body: String, key: String? = nil) async throws -> TestResponse {
                var headers = HTTPFields()
                if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
                return try await Self.post(client, "/v1/sagas/\(id)/signals/\(name)", body, headers: headers)
            }
            // Early: the saga waits for approval, not payment; the payment result is kept.
            let early = try await signal("payment-result", #"{"payload":{"payment_id":"p-1"}}"#, key: "cb-1")
            #expect(early.status == .accepted)
            #expect(try Self.json(early).value(at: ["signals", "0", "consumed_by"]) == .null)
            #expect(try Self.json(early).value(at: ["current_step"]) == "await-approval")
            // The same request again changes nothing.
            let again = try await signal("payment-result", #"{"payload":{"payment_id":"p-1"}}"#, key: "cb-1")
            #expect(again.status == .ok)
            guard case .array(let kept)? = try Self.json(again).value(at: ["signals"]) else {
                Issue.record("no signals")
                return
            }
            #expect(kept.count == 1)
            // Another payment result while one is kept: refused.
            let second = try await signal("payment-result", #"{"payload":{"payment_id":"p-2"}}"#, key: "cb-2")
            #expect(second.status == .conflict)
            #expect(try Self.json(second).value(at: ["type"]) == "https://baton.dev/problems/signal-refused")
            // The approval is consumed at once; the reserve command goes out.
            let approved = try await signal("approval", #"{"payload":{"by":"risk-team"}}"#)
            #expect(approved.status == .accepted)
            let saga = try Self.json(approved)
            #expect(saga.value(at: ["steps", "0", "status"]) == "SUCCEEDED")
            #expect(saga.value(at: ["steps", "0", "output"]) == ["by": "risk-team"])
            #expect(saga.value(at: ["signals", "1", "consumed_by"]) == "await-approval")
            #expect(saga.value(at: ["signals", "1", "sent_by"]) == "local")
            #expect(saga.value(at: ["current_step"]) == "reserve")
            // Without a key, the body names the signal: the same body again is the same signal.
            #expect(try await signal("approval", #"{"payload":{"by":"risk-team"}}"#).status == .ok)
            let late = try await signal("approval", #"{"payload":{"by":"someone-else"}}"#)
            #expect(late.status == .conflict)
            #expect(
                try Self.json(late).value(at: ["detail"])
                    == "step 'await-approval' is SUCCEEDED and no longer waits for signal 'approval'")

            // What is wrong with a request is said.
            #expect(try await signal("refund", "{}").status == .conflict)
            #expect(try await signal("bad.name", "{}").status == .badRequest)
            #expect(try await signal("approval", #"{"payload":1,"failed":{"code":"x"}}"#).status == .badRequest)
            #expect(try await signal("approval", #"{"failed":{"message":"no code"}}"#).status == .badRequest)
            #expect(try await signal("approval", #"{"paylod":1}"#).status == .badRequest)
            #expect(try await signal("approval", "[1]").status == .badRequest)
            // A payload the database cannot store is a 422, and the saga is left as it was.
            let other = try #require(
                try Self.json(try await Self.submit(client, #"{"workflow":"signal-test","input":{}}"#)).value(at: ["id"])?.stringValue)
            let unstorable = try await Self.post(client, "/v1/sagas/\(other)/signals/approval", #"{"payload":"a\u0000b"}"#)
            #expect(unstorable.status == .unprocessableContent)
            #expect(try Self.json(unstorable).value(at: ["type"]) == "https://baton.dev/problems/unstorable-payload")
            #expect(try await store.saga(id: other)?.saga.signals.isEmpty == true)
            #expect(try await signal("approval", "{}", key: String(repeating: "k", count: 256)).status == .badRequest)
            let missing = try await Self.post(client, "/v1/sagas/\(UUID().uuidString.lowercased())/signals/approval", "{}")
            #expect(missing.status == .notFound)

            // Stored with the saga: read back as sent, and in the history with who sent it.
            let stored = try #require(try await store.saga(id: id)).saga
            #expect(stored.signals.map(\.name) == ["payment-result", "approval"])
            #expect(stored.signals[0].outcome == .succeeded(payload: ["payment_id": "p-1"]))
            #expect(stored.signals[0].consumedBy == nil)
            let history = try await store.history(sagaID: id).map(\.entry)
            #expect(history.filter { $0.kind == .signalReceived }.map(\.actor) == ["local", "local"])
            #expect(history.contains { $0.kind == .signalRefused })
        }
    }
}
