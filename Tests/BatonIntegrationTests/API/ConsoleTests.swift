import BatonCore
import BatonEngine
import BatonStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import BatonAPI

/// The web console's pages through the router, against the real store: what each shows, who may
/// see and do what, and how a change is asked for. (The browser test, scripts/console-test, drives
/// the same pages in Chromium against running servers.)
@Suite("Web console")
struct ConsoleTests {
    static let tokens: [APIAccessPolicy.StaticToken] = [
        .init(name: "reader", token: "read-token", scopes: [.sagasRead]),
        .init(name: "submitter", token: "submit-token", scopes: [.sagasRead, .sagasWrite]),
        .init(name: "alice-oncall", token: "operator-token", scopes: [.sagasRead, .operator]),
    ]

    static func html(_ response: TestResponse) -> String { String(buffer: response.body) }

    static func page(_ client: some TestClientProtocol, _ uri: String, cookie: String? = nil) async throws -> TestResponse {
        var headers = HTTPFields()
        if let cookie { headers[.cookie] = "\(Console.cookieName)=\(cookie)" }
        return try await client.execute(uri: uri, method: .get, headers: headers)
    }

    static func form(
        _ client: some TestClientProtocol, _ uri: String, _ fields: [(String, String)], cookie: String? = nil, origin: String? = nil
    ) async throws -> TestResponse {
        var headers = HTTPFields()
        headers[.contentType] = "application/x-www-form-urlencoded"
        if let cookie { headers[.cookie] = "\(Console.cookieName)=\(cookie)" }
        if let origin { headers[.origin] = origin }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: ConsoleFormat.query(fields)))
    }

    static func submit(
        _ client: some TestClientProtocol, key: String, amount: Int = 100, headers extra: HTTPFields = [:]
    ) async throws
        -> String
    {
        var headers = extra
        headers[HTTPField.Name("Idempotency-Key")!] = key
        let response = try await APITests.submit(
            client, #"{"workflow":"store-test","input":{"amount":\#(amount),"order":"ord-\#(key)"}}"#, headers: headers)
        return try #require(try APITests.json(response).value(at: ["id"])?.stringValue)
    }

    @Test("the pages show the sagas, a saga's timeline and history, the workflows; a bad filter or id is a page that says why")
    func pages() async throws {
        try await APITests.withAPI { client, _ in
            var correlated = HTTPFields()
            correlated[HTTPField.Name("X-Correlation-ID")!] = "corr-77"
            let id = try await Self.submit(client, key: "k-1", headers: correlated)
            let other = try await Self.submit(client, key: "k-2")

            let overview = try await Self.page(client, "/ui")
            #expect(overview.status == .ok)
            #expect(overview.headers[.contentType] == "text/html; charset=utf-8")
            #expect(overview.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("script-src 'self'") == true)
            #expect(Self.html(overview).contains("In flight"))
            // No NATS here: the page says what it cannot read instead of failing.
            #expect(Self.html(overview).contains("dead letters cannot be read now"))
            #expect((try await Self.page(client, "/")).headers[.location] == "/ui")

            // Search by saga id, correlation id, idempotency key, or a value of the input.
            for search in [id, "corr-77", "k-1", "ord-k-1"] {
                let list = Self.html(try await Self.page(client, "/ui/sagas?q=\(search)"))
                #expect(list.contains("/ui/sagas/\(id)") && !list.contains("/ui/sagas/\(other)"), "search \(search)")
            }
            let filtered = Self.html(try await Self.page(client, "/ui/sagas?status=PROCESSING&workflow=store-test"))
            #expect(filtered.contains(id) && filtered.contains(other))
            #expect(!Self.html(try await Self.page(client, "/ui/sagas?status=COMPLETED")).contains(id))
            let rows = Self.html(try await Self.page(client, "/ui/sagas/rows?q=k-2"))
            #expect(rows.contains(other) && !rows.contains("<html"))
            let bad = try await Self.page(client, "/ui/sagas?status=NOPE")
            #expect(bad.status == .badRequest && Self.html(bad).contains("unknown status &#39;NOPE&#39;"))
            let badTime = try await Self.page(client, "/ui/sagas?created_after=yesterday")
            #expect(badTime.status == .badRequest && Self.html(badTime).contains("created after must be a time"))

            let saga = Self.html(try await Self.page(client, "/ui/sagas/\(id)"))
            #expect(saga.contains(#"data-status="PROCESSING""#))
            #expect(saga.contains("reserve: action attempt 1, running"), "the first step's attempt is on the timeline")
            #expect(saga.contains("saga_started") && saga.contains("command_sent"), "the history")
            #expect(saga.contains("corr-77") && saga.contains("k-1"))
            let unknown = try await Self.page(client, "/ui/sagas/0190f5a4-7b1c-7d2e-8f00-000000000000")
            #expect(unknown.status == .notFound && Self.html(unknown).contains("no saga with id"))

            let workflow = Self.html(try await Self.page(client, "/ui/workflows/store-test"))
            #expect(workflow.contains("inventory.reserve") && workflow.contains("↺ undo: inventory.release"))
            #expect(Self.html(try await Self.page(client, "/ui/workflows")).contains("store-test"))
            #expect((try await Self.page(client, "/ui/workflows/nope")).status == .notFound)
            // What can happen to it: the simulation, its end states with their stories, and the
            // findings (the fixture's release reads the reservation, null when reserving timed out).
            #expect(workflow.contains("What can happen") && !workflow.contains("simulation-result"))
            let simulated = Self.html(try await Self.page(client, "/ui/workflows/store-test?version=1&simulate=1&runs=300&seed=4"))
            #expect(simulated.contains("300 runs, seed <span class=\"mono\">4</span>"))
            #expect(simulated.contains("invariants held"))
            #expect(simulated.contains("<summary>COMPLETED</summary>") && simulated.contains("start → PROCESSING"))
            #expect(simulated.contains("<strong>null-in-compensation</strong>"))
            let again = Self.html(try await Self.page(client, "/ui/workflows/store-test?version=1&simulate=1&runs=300&seed=4"))
            #expect(again == simulated)
            #expect((try await Self.page(client, "/ui/workflows/store-test?simulate=1&runs=99999")).status == .badRequest)
            #expect((try await Self.page(client, "/ui/workflows/store-test?simulate=1&seed=x1")).status == .badRequest)
            #expect((try await Self.page(client, "/ui/assets/console.js")).headers[.contentType] == "text/javascript; charset=utf-8")
        }
    }

    @Test("with credentials: sign-in sets an HttpOnly SameSite cookie; a page needs its scope; only allowed actions are offered")
    func credentials() async throws {
        try await APITests.withAPI(access: APIAccessPolicy(tokens: Self.tokens)) { client, _ in
            var submitter = HTTPFields()
            submitter[.authorization] = "Bearer submit-token"
            let id = try await Self.submit(client, key: "k-3", headers: submitter)

            let anonymous = try await Self.page(client, "/ui/sagas/\(id)")
            #expect(anonymous.status == .found)
            #expect(anonymous.headers[.location] == "/ui/login?next=/ui/sagas/\(id)")
            #expect((try await Self.page(client, "/ui/login")).status == .ok)

            let refused = try await Self.form(client, "/ui/login", [("token", "nope"), ("next", "/ui")])
            #expect(refused.status == .unauthorized && refused.headers[.setCookie] == nil)
            let signIn = try await Self.form(client, "/ui/login", [("token", "read-token"), ("next", "/ui/sagas/\(id)")])
            #expect(signIn.status == .seeOther && signIn.headers[.location] == "/ui/sagas/\(id)")
            let cookie = try #require(signIn.headers[.setCookie])
            #expect(
                cookie.contains("\(Console.cookieName)=read-token") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            // Elsewhere than the console is not a place to go back to.
            let offsite = try await Self.form(client, "/ui/login", [("token", "read-token"), ("next", "https://evil.example")])
            #expect(offsite.headers[.location] == "/ui")

            let asReader = Self.html(try await Self.page(client, "/ui/sagas/\(id)", cookie: "read-token"))
            #expect(asReader.contains("reader") && !asReader.contains("<form method=\"post\" action=\"/ui/sagas/\(id)/"))
            let asSubmitter = Self.html(try await Self.page(client, "/ui/sagas/\(id)", cookie: "submit-token"))
            #expect(asSubmitter.contains("/ui/sagas/\(id)/cancel") && !asSubmitter.contains("/ui/sagas/\(id)/actions"))

            // A change a caller's scopes do not allow is refused, offered or not.
            let forbidden = try await Self.form(
                client, "/ui/sagas/\(id)/cancel", [("reason", "x"), ("confirm", "yes")], cookie: "read-token")
            #expect(forbidden.status == .forbidden && Self.html(forbidden).contains("sagas:write"))
            // The API itself does not take the console's cookie: it keeps its bearer credentials.
            var cookieOnly = HTTPFields()
            cookieOnly[.cookie] = "\(Console.cookieName)=read-token"
            #expect((try await client.execute(uri: "/v1/sagas", method: .get, headers: cookieOnly)).status == .unauthorized)
            #expect((try await Self.page(client, "/ui/events")).status == .unauthorized)
        }
    }

    @Test("a change needs a reason and a confirmation, is recorded with the caller, is refused from another site, and a refusal says why")
    func changes() async throws {
        try await APITests.withAPI(access: APIAccessPolicy(tokens: Self.tokens)) { client, store in
            var submitter = HTTPFields()
            submitter[.authorization] = "Bearer submit-token"
            let id = try await Self.submit(client, key: "k-4", headers: submitter)

            let unconfirmed = try await Self.form(client, "/ui/sagas/\(id)/cancel", [("reason", "wrong amount")], cookie: "submit-token")
            #expect(unconfirmed.status == .badRequest && Self.html(unconfirmed).contains("tick the confirmation box"))
            let noReason = try await Self.form(client, "/ui/sagas/\(id)/cancel", [("confirm", "yes")], cookie: "submit-token")
            #expect(noReason.status == .badRequest && Self.html(noReason).contains("give a reason"))
            let crossSite = try await Self.form(
                client, "/ui/sagas/\(id)/cancel", [("reason", "x"), ("confirm", "yes")], cookie: "submit-token",
                origin: "https://evil.example")
            #expect(crossSite.status == .forbidden)
            #expect(try await store.saga(id: id)?.saga.status == .processing)

            let cancelled = try await Self.form(
                client, "/ui/sagas/\(id)/cancel", [("reason", "wrong amount"), ("confirm", "yes")], cookie: "submit-token")
            #expect(cancelled.status == .seeOther && cancelled.headers[.location] == "/ui/sagas/\(id)?done=cancel")
            #expect(try await store.saga(id: id)?.saga.status == .compensating)
            let history = try await store.history(sagaID: id)
            #expect(
                history.contains {
                    $0.entry.kind == .cancelRequested && $0.entry.actor == "submitter" && $0.entry.detail.contains("wrong amount")
                })
            #expect(
                Self.html(try await Self.page(client, "/ui/sagas/\(id)?done=cancel", cookie: "submit-token")).contains("Cancel recorded."))

            // An operator action on a saga that is not suspended is refused, and the page says why.
            let action = try await Self.form(
                client, "/ui/sagas/\(id)/actions", [("action", "retry"), ("reason", "try again"), ("confirm", "yes")],
                cookie: "operator-token")
            #expect(action.status == .conflict)
            #expect(Self.html(action).contains("notice error") && Self.html(action).contains("SUSPENDED"))
        }
    }

    @Test("the timeline: a bar per attempt, compensations apart, moments as marks, bars still running end now")
    func timeline() {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        func entry(
            _ kind: HistoryEntry.Kind, _ step: String?, _ direction: StepDirection? = nil, _ attempt: Int? = nil, at seconds: Double
        )
            -> HistoryEntry
        {
            HistoryEntry(
                kind: kind, step: step, direction: direction, attempt: attempt, statusBefore: .processing, statusAfter: .processing,
                detail: kind.rawValue, at: start + seconds)
        }
        let history = [
            entry(.sagaStarted, nil, at: 0),
            entry(.commandSent, "debit", .action, 1, at: 0),
            entry(.stepTimedOut, "debit", .action, 1, at: 2),
            entry(.retryScheduled, "debit", .action, 1, at: 2),
            entry(.commandSent, "debit", .action, 2, at: 3),
            entry(.heartbeat, "debit", .action, 2, at: 3.5),
            entry(.stepSucceeded, "debit", .action, 2, at: 4),
            entry(.commandSent, "credit", .action, 1, at: 4),
            entry(.stepFailed, "credit", .action, 1, at: 5),
            entry(.commandSent, "debit", .compensation, 1, at: 5),
            entry(.stepCompensated, "debit", .compensation, 1, at: 6),
            entry(.commandSent, "notify", .action, 1, at: 6),
        ]
        let timeline = SagaTimeline(
            steps: ["debit", "credit", "notify"], history: history, createdAt: start, finishedAt: nil, now: start + 10)
        #expect(timeline.rows.map(\.step) == ["debit", "credit", "notify"])
        let debit = timeline.rows[0]
        #expect(debit.bars.map(\.outcome) == [.timedOut, .succeeded, .compensated])
        #expect(debit.bars.map(\.direction) == [.action, .action, .compensation])
        #expect(debit.marks.map(\.kind) == [.retryScheduled, .heartbeat])
        #expect(timeline.rows[1].bars.map(\.outcome) == [.failed])
        let running = timeline.rows[2].bars[0]
        #expect(running.outcome == .running && running.end == nil)
        #expect(timeline.sagaMarks.map(\.kind) == [.sagaStarted])
        #expect(timeline.end == start + 10)
        #expect(timeline.position(start + 5) == 50)
        #expect(timeline.width(running) == 40)
        // A moment at the very start still shows.
        #expect(
            timeline.width(SagaTimeline.Bar(direction: .action, attempt: 1, start: start, end: start, outcome: .succeeded, detail: "")) > 0)
    }

    @Test("the change feed tells a page watching a saga when it changes, from one look at the database for all pages")
    func feed() async throws {
        try await APITests.withAPI { client, store in
            let id = try await Self.submit(client, key: "k-5")
            let feed = ConsoleFeed(store: store, interval: .milliseconds(100), logger: Logger(label: "test"))
            let one = try #require(await feed.subscribe(saga: id))
            let all = try #require(await feed.subscribe(saga: nil))
            // The first look learns where things stand; then a change is news.
            try await Task.sleep(for: .milliseconds(300))
            let cancel = try await APITests.post(client, "/v1/sagas/\(id)/cancel", #"{"reason":"feed test"}"#)
            #expect(cancel.status == .accepted)
            let seen = await Self.first(one)
            #expect(seen?.contains { $0.id == id && $0.status == "COMPENSATING" } == true)
            let everything = await Self.first(all)
            #expect(everything?.contains { $0.id == id } == true)
            let other = try await Self.submit(client, key: "k-6")
            var news = await Self.first(all)
            while let batch = news, !batch.contains(where: { $0.id == other }) { news = await Self.first(all) }
            #expect(news?.contains { $0.id == other } == true, "a new saga is news to a page watching every saga")

            // A client opening streams in a loop meets a limit, not the end of the server's memory.
            var held: [AsyncStream<[ConsoleFeed.Change]>] = []
            while let stream = await feed.subscribe(saga: id) { held.append(stream) }
            #expect(held.count + 2 == ConsoleFeed.maximumSubscribers)
        }
    }

    /// The next batch a stream gives within 10 s.
    static func first(_ stream: AsyncStream<[ConsoleFeed.Change]>) async -> [ConsoleFeed.Change]? {
        await withTaskGroup(of: [ConsoleFeed.Change]?.self) { group in
            group.addTask {
                var iterator = stream.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
