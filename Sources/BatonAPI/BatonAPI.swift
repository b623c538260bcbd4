import BatonCore
import BatonEngine
import BatonHTTP
import BatonStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

/// Baton's HTTP API (`docs/openapi.yaml`): submit and inspect sagas, cancel them, act on suspended
/// ones, manage workflow definitions, and the health endpoints.
public struct BatonAPI: Sendable {
    public struct Configuration: Sendable {
        /// Request bodies larger than this are refused with 413.
        public var bodyLimit: Int
        /// When not empty, every `/v1` route requires `Authorization: Bearer <one of these>`.
        public var tokens: [String]
        /// The longest `?wait=` a client may ask for.
        public var maximumWait: Duration

        public init(bodyLimit: Int = 1 << 20, tokens: [String] = [], maximumWait: Duration = .seconds(60)) {
            self.bodyLimit = bodyLimit
            self.tokens = tokens
            self.maximumWait = maximumWait
        }
    }

    let store: SagaStore
    let commands: SagaCommands
    /// The registry `/metrics` serves: the engine's metrics are made in it.
    public let metrics: PrometheusCollectorRegistry
    let configuration: Configuration
    /// Whether each dependency answers (`postgres`, `nats`): `/readyz` is 503 unless all do.
    let readiness: @Sendable () async -> [String: Bool]

    public init(
        store: SagaStore,
        commands: SagaCommands,
        configuration: Configuration,
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        readiness: @escaping @Sendable () async -> [String: Bool]
    ) {
        self.metrics = metrics
        self.store = store
        self.commands = commands
        self.configuration = configuration
        self.readiness = readiness
    }

    /// Every route, in OpenAPI's notation, with the statuses it answers: the spec test checks
    /// `docs/openapi.yaml` against this list and this list against the router.
    /// The engine's metrics, made in ``metrics``: hand it to the engine's services.
    public var engineMetrics: EngineMetrics { EngineMetrics(factory: PrometheusMetricsFactory(registry: metrics)) }

    public static let routes: [(method: String, path: String, statuses: Set<Int>)] = [
        ("GET", "/healthz", [200]), ("GET", "/readyz", [200, 503]), ("GET", "/metrics", [200]),
        ("POST", "/v1/sagas", [202, 400, 401, 409, 413, 422]), ("GET", "/v1/sagas", [200, 400, 401]),
        ("GET", "/v1/sagas/{id}", [200, 400, 401, 404]), ("GET", "/v1/sagas/{id}/history", [200, 400, 401, 404]),
        ("POST", "/v1/sagas/{id}/cancel", [202, 400, 401, 404, 409, 413]),
        ("POST", "/v1/sagas/{id}/actions", [200, 400, 401, 404, 409, 413]),
        ("GET", "/v1/workflows", [200, 401]), ("POST", "/v1/workflows", [200, 201, 401, 409, 413, 422]),
        ("GET", "/v1/workflows/{name}", [200, 401, 404]),
    ]

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: CorrelationMiddleware())
        router.add(middleware: ProblemMiddleware())
        router.get("/healthz") { _, _ in Render.json(["status": "ok"]) }
        router.get("/metrics") { _, _ in
            // Sampled figures (sagas in flight, the outbox) are read from the store at each scrape.
            try? await engineMetrics.sample(store)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        }
        router.get("/readyz") { _, _ in
            let checks = await readiness()
            let ready = checks.values.allSatisfy { $0 }
            return Render.json(
                ["status": ready ? "ready" : "not ready", "checks": .object(checks.mapValues { .bool($0) })],
                status: ready ? .ok : .serviceUnavailable)
        }

        let v1 = router.group("v1")
        if !configuration.tokens.isEmpty { v1.add(middleware: BearerTokenMiddleware(tokens: configuration.tokens)) }
        v1.post("sagas") { request, context in try await submit(request, context) }
        v1.get("sagas") { request, _ in try await list(request) }
        v1.get("sagas/:id") { request, context in try await get(request, context) }
        v1.get("sagas/:id/history") { request, context in try await history(request, context) }
        v1.post("sagas/:id/cancel") { request, context in try await cancel(request, context) }
        v1.post("sagas/:id/actions") { request, context in try await act(request, context) }
        v1.get("workflows") { _, _ in try await workflows() }
        v1.post("workflows") { request, context in try await register(request, context) }
        v1.get("workflows/:name") { _, context in try await workflow(context) }
        return router
    }

    // MARK: - Sagas

    func submit(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await jsonBody(request)
        guard case .object(let fields) = body else { throw APIProblem.badRequest("the body must be a JSON object") }
        guard case .string(let workflow)? = fields["workflow"], !workflow.isEmpty else {
            throw APIProblem.badRequest("\"workflow\" (a workflow name) is required", code: "invalid-request")
        }
        var version: Int?
        if let value = fields["version"], value != .null {
            guard case .integer(let number) = value, number > 0 else {
                throw APIProblem.badRequest("\"version\" must be a positive integer", code: "invalid-request")
            }
            version = Int(number)
        }
        let unknown = Set(fields.keys).subtracting(["workflow", "version", "input"])
        guard unknown.isEmpty else {
            throw APIProblem.badRequest("unknown field(s) \(unknown.sorted()): expected workflow, version, input", code: "invalid-request")
        }
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > 255 {
            throw APIProblem.badRequest("Idempotency-Key must be 1 to 255 characters", code: "invalid-request")
        }
        // Always present: the correlation middleware sets one when the caller did not.
        let correlationID = request.headers[CorrelationMiddleware<BasicRequestContext>.header]
        let traceparent = request.headers[CorrelationMiddleware<BasicRequestContext>.traceparentHeader]
        do {
            let creation = try await commands.submit(
                workflow: workflow, version: version, input: fields["input"] ?? [:], idempotencyKey: idempotencyKey,
                correlationID: correlationID, traceparent: traceparent)
            let saga = creation.record.saga
            var headers = HTTPFields()
            headers[.location] = "/v1/sagas/\(saga.id)"
            if case .existing = creation { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
            return Render.json(
                ["id": .string(saga.id), "status": .string(saga.status.rawValue), "links": Render.links(saga.id)], status: .accepted,
                headers: headers)
        } catch let error as SagaCommands.SubmissionError {
            switch error {
            case .unknownWorkflow, .unknownVersion:
                throw APIProblem(.unprocessableContent, code: "unknown-workflow", title: "Unknown workflow", detail: error.description)
            case .invalidInput(let problems):
                throw APIProblem(
                    .unprocessableContent, code: "invalid-input", title: "The input does not match the workflow's input schema",
                    detail: problems.joined(separator: "; "), extra: ["errors": .array(problems.map(JSONValue.string))])
            }
        } catch SagaStoreError.unstorableValue(let reason) {
            throw APIProblem(
                .unprocessableContent, code: "unstorable-input", title: "The input cannot be stored",
                detail: "the input holds a value the database cannot store (\(reason)); remove NUL characters (\\u0000) from strings")
        } catch SagaStoreError.idempotencyConflict(let key, let existing) {
            throw APIProblem(
                .conflict, code: "idempotency-conflict", title: "Idempotency key reused",
                detail:
                    "Idempotency-Key '\(key)' was used for a different request (saga \(existing)); reuse a key only to retry the identical request"
            )
        }
    }

    func get(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        var record = try await existingSaga(id)
        if let wait = request.uri.queryParameters["wait"] {
            guard let duration = SagaDuration(parsing: String(wait)) else {
                throw APIProblem.badRequest("wait must be a duration such as 500ms, 10s or 1m, got '\(wait)'")
            }
            let limit = min(Duration.milliseconds(duration.milliseconds), configuration.maximumWait)
            let end = ContinuousClock.now + limit
            while !record.saga.status.isTerminal && ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(100))
                record = try await existingSaga(id)
            }
        }
        return Render.json(Render.saga(record))
    }

    func history(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let after = try integer(request, "after", default: 0, range: 0...Int.max)
        let limit = try integer(request, "limit", default: 1000, range: 1...1000)
        let entries = try await store.history(sagaID: id, afterSeq: after, limit: limit)
        return Render.json(["entries": .array(entries.map(Render.history))])
    }

    func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var list = SagaListQuery()
        for value in values(request, "status") {
            guard let status = SagaStatus(rawValue: value.uppercased()) else {
                throw APIProblem.badRequest(
                    "unknown status '\(value)': expected one of \(SagaStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            list.statuses.insert(status)
        }
        list.workflow = query["workflow"].map(String.init)
        list.createdFrom = try time(request, "created_after")
        list.createdBefore = try time(request, "created_before")
        list.stuck = try values(request, "stuck").map(stuckCondition)
        list.limit = try integer(request, "limit", default: 50, range: 1...SagaListQuery.maximumLimit)
        if let cursor = query["cursor"] {
            do {
                list.after = try SagaPageCursor(encoded: String(cursor))
            } catch {
                throw APIProblem.badRequest("\(error.description): pass back the next_cursor of a previous page", code: "invalid-cursor")
            }
        }
        let page = try await store.listSagas(list, now: .now)
        return Render.json(["sagas": .array(page.sagas.map(Render.summary)), "next_cursor": Render.string(page.next?.encoded)])
    }

    /// `suspended`, `compensating`, `running:<duration>`, `retries:<n>`, `awaiting:<duration>`.
    func stuckCondition(_ text: String) throws -> StuckCondition {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first ?? "", parts.count > 1 ? parts[1] : nil) {
        case ("suspended", nil): return .suspended
        case ("compensating", nil): return .compensating
        case ("running", let duration?):
            if let duration = SagaDuration(parsing: duration) { return .runningLongerThan(duration) }
        case ("retries", let count?):
            if let count = Int(count), count >= 0 { return .retriedMoreThan(count) }
        case ("awaiting", let duration?):
            if let duration = SagaDuration(parsing: duration) { return .awaitingReplySince(.now - duration) }
        default: break
        }
        throw APIProblem.badRequest(
            "unknown stuck filter '\(text)': expected suspended, compensating, running:<duration>, retries:<n> or awaiting:<duration>")
    }

    func cancel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let body = try await optionalJSONBody(request)
        let reason = body?.value(at: ["reason"])?.stringValue ?? "cancelled over the API"
        let (record, outcome) = try await commands.cancel(id: id, reason: reason)
        if case .rejected(let why) = outcome {
            throw APIProblem(.conflict, code: "cannot-cancel", title: "The saga cannot be cancelled", detail: why)
        }
        return Render.json(Render.saga(record), status: .accepted)
    }

    func act(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let body = try await jsonBody(request)
        guard let name = body.value(at: ["action"])?.stringValue else {
            throw APIProblem.badRequest("\"action\" is required: retry, skip, resolve or compensate", code: "invalid-request")
        }
        guard let reason = body.value(at: ["reason"])?.stringValue, !reason.isEmpty else {
            throw APIProblem.badRequest(
                "\"reason\" is required: every operator action is recorded with its reason", code: "invalid-request")
        }
        let action: OperatorAction
        switch name {
        case "retry": action = .retry(reason: reason)
        case "resolve": action = .resolve(reason: reason)
        case "compensate": action = .compensate(reason: reason)
        case "skip":
            guard let step = body.value(at: ["step"])?.stringValue else {
                throw APIProblem.badRequest("\"step\" is required to skip a step", code: "invalid-request")
            }
            action = .skip(step: step, reason: reason)
        default:
            throw APIProblem.badRequest("unknown action '\(name)': expected retry, skip, resolve or compensate", code: "invalid-request")
        }
        let (record, outcome) = try await commands.act(on: id, action)
        if case .rejected(let why) = outcome {
            throw APIProblem(.conflict, code: "action-refused", title: "The action is not allowed now", detail: why)
        }
        return Render.json(Render.saga(record))
    }

    func existingSaga(_ id: String) async throws -> SagaRecord {
        guard let record = try await store.saga(id: id) else { throw APIProblem.notFound("no saga with id '\(id)'") }
        return record
    }

    // MARK: - Workflows

    func workflows() async throws -> Response {
        let latest = try await store.latestDefinitions()
        return Render.json([
            "workflows": .array(
                latest.map {
                    [
                        "name": .string($0.definition.name), "latest_version": .integer(Int64($0.definition.version)),
                        "description": .string($0.definition.description),
                        "links": ["self": .string("/v1/workflows/\($0.definition.name)")],
                    ]
                })
        ])
    }

    func workflow(_ context: BasicRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        let versions = try await store.definitionVersions(name: name)
        guard !versions.isEmpty else { throw APIProblem.notFound("no workflow named '\(name)'") }
        return Render.json(["name": .string(name), "versions": .array(versions.map(Render.definition))])
    }

    func register(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let text = String(buffer: try await collect(request))
        let contentType = request.headers[.contentType] ?? "application/json"
        let format: WorkflowFormat = contentType.contains("yaml") ? .yaml : .json
        let definition: WorkflowDefinition
        do {
            definition = try WorkflowDefinition.parse(text, format: format, source: "request body")
        } catch {
            throw APIProblem(
                .unprocessableContent, code: "invalid-workflow", title: "The workflow definition is invalid",
                detail: error.issues.map(\.description).joined(separator: "; "),
                extra: ["errors": .array(error.issues.map { .string($0.description) })])
        }
        do {
            let registration = try await store.registerDefinition(definition, source: text, now: .now)
            var headers = HTTPFields()
            headers[.location] = "/v1/workflows/\(definition.name)"
            let created: Bool = if case .registered = registration { true } else { false }
            return Render.json(Render.definition(registration.stored), status: created ? .created : .ok, headers: headers)
        } catch let error as SagaStoreError {
            switch error {
            case .definitionConflict:
                throw APIProblem(.conflict, code: "version-exists", title: "This workflow version exists", detail: error.description)
            case .unstorableValue(let reason):
                throw APIProblem(
                    .unprocessableContent, code: "invalid-workflow", title: "The workflow definition cannot be stored",
                    detail: "it holds a value the database cannot store (\(reason))")
            default:
                throw error
            }
        }
    }

    // MARK: - Request reading

    func collect(_ request: Request) async throws -> ByteBuffer {
        try await JSONBodies.collect(request, limit: configuration.bodyLimit)
    }

    func jsonBody(_ request: Request) async throws -> JSONValue {
        guard let body = try await optionalJSONBody(request) else { throw APIProblem.badRequest("a JSON body is required") }
        return body
    }

    func optionalJSONBody(_ request: Request) async throws -> JSONValue? {
        try await JSONBodies.read(request, limit: configuration.bodyLimit)
    }

    /// A query parameter's values, repeated or comma-separated.
    func values(_ request: Request, _ name: String) -> [String] {
        request.uri.queryParameters[values: Substring(name)].flatMap { $0.split(separator: ",").map(String.init) }
    }

    func integer(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw APIProblem.badRequest("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
        }
        return number
    }

    func time(_ request: Request, _ name: String) throws -> Date? {
        guard let text = request.uri.queryParameters[Substring(name)] else { return nil }
        guard let date = (try? Render.timeStyle.parse(String(text))) ?? (try? Date.ISO8601FormatStyle().parse(String(text))) else {
            throw APIProblem.badRequest("\(name) must be an RFC 3339 time such as 2026-11-21T14:00:00Z, got '\(text)'")
        }
        return date
    }
}

/// `Authorization: Bearer <token>` on every route it guards, compared in constant time.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    /// SHA-256 of each accepted token.
    let digests: [[UInt8]]

    init(tokens: [String]) { digests = tokens.map { Array(SHA256.hash(data: Data($0.utf8))) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let header = request.headers[.authorization] ?? ""
        guard header.hasPrefix("Bearer ") else { throw Self.unauthorized }
        // Fixed-length digests compared byte by byte without stopping early, against every token:
        // the time taken does not depend on the token or on how much of it matches.
        let presented = Array(SHA256.hash(data: Data(header.dropFirst("Bearer ".count).utf8)))
        var matched = false
        for digest in digests {
            var difference: UInt8 = 0
            for (left, right) in zip(digest, presented) { difference |= left ^ right }
            matched = matched || difference == 0
        }
        guard matched else { throw Self.unauthorized }
        return try await next(request, context)
    }

    static var unauthorized: APIProblem {
        APIProblem(
            .unauthorized, code: "unauthorized", title: "Authentication required",
            detail: "send Authorization: Bearer <token> with one of the server's API tokens")
    }
}
