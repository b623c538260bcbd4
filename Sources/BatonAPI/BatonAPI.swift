import BatonCore
import BatonEngine
import BatonHTTP
import BatonStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Baton's HTTP API (`docs/openapi.yaml`): submit and inspect sagas, cancel them, act on suspended
/// ones, manage workflow definitions, and the health endpoints.
public struct BatonAPI: Sendable {
    public struct Configuration: Sendable {
        /// Request bodies larger than this are refused with 413.
        public var bodyLimit: Int
        /// Who may call the `/v1` routes, and with which scopes; ``APIAccessPolicy/open`` lets
        /// everyone in (for loopback only).
        public var access: APIAccessPolicy
        /// The longest `?wait=` a client may ask for.
        public var maximumWait: Duration
        /// The bounds a registered definition must keep.
        public var definitionLimits: DefinitionLimits
        /// A saga's input, in bytes of compact JSON.
        public var maximumInputBytes: Int
        /// A cancel's or an operator action's reason, in characters.
        public var maximumReasonLength: Int
        /// Timeouts and header limits of the HTTP server.
        public var http: HTTPServerLimits
        /// How long a request may take before it is answered 503 (a long-poll gets its wait on top).
        public var requestTimeout: Duration
        /// The one web origin (`https://console.example.com`) whose pages may call the API from a
        /// browser (CORS); `nil` answers no CORS request, so no other site's page can.
        public var corsOrigin: String?
        /// Whether registering changed content under a version no saga has run replaces it instead
        /// of answering 409: for `baton dev`, where definitions change while they are written.
        public var replacesUnusedVersions = false

        public init(
            bodyLimit: Int = 1 << 20,
            access: APIAccessPolicy = .open,
            maximumWait: Duration = .seconds(60),
            definitionLimits: DefinitionLimits = .default,
            maximumInputBytes: Int = 64 * 1024,
            maximumReasonLength: Int = 1024,
            http: HTTPServerLimits = .init(),
            corsOrigin: String? = nil,
            requestTimeout: Duration = .seconds(10)
        ) {
            self.requestTimeout = requestTimeout
            self.http = http
            self.corsOrigin = corsOrigin
            self.bodyLimit = bodyLimit
            self.access = access
            self.maximumWait = maximumWait
            self.definitionLimits = definitionLimits
            self.maximumInputBytes = maximumInputBytes
            self.maximumReasonLength = maximumReasonLength
        }
    }

    let store: SagaStore
    let runner: SagaRunner
    /// The registry `/metrics` serves: the engine's metrics are made in it.
    public let metrics: PrometheusCollectorRegistry
    let configuration: Configuration
    /// Whether each dependency answers (`postgres`, `nats`): `/readyz` is 503 unless all do.
    let readiness: @Sendable () async -> [String: Bool]
    /// Called after a workflow version is registered (the server makes its participants' consumers).
    let onRegistered: @Sendable (WorkflowDefinition) async -> Void
    /// What the web console reads from NATS (dead letters, participants' consumers).
    let messaging: MessagingReads
    /// Whether each participant has a worker (`GET /v1/participants`, a saga's warnings).
    let participants: ParticipantMonitor

    public init(
        store: SagaStore,
        runner: SagaRunner,
        configuration: Configuration,
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        onRegistered: @escaping @Sendable (WorkflowDefinition) async -> Void = { _ in },
        messaging: MessagingReads = .unavailable,
        readiness: @escaping @Sendable () async -> [String: Bool]
    ) {
        self.messaging = messaging
        self.participants = ParticipantMonitor(store: store, messaging: messaging, logger: Logger(label: "baton.participants"))
        self.onRegistered = onRegistered
        self.metrics = metrics
        self.store = store
        self.runner = runner
        self.configuration = configuration
        self.readiness = readiness
    }

    /// Watches the participants' consumers until cancelled (``BatonServer`` runs it beside the API).
    public func watchParticipants() async { await participants.run() }

    /// Every route, in OpenAPI's notation, with the statuses it answers: the spec test checks
    /// `docs/openapi.yaml` against this list and this list against the router.
    /// The engine's metrics, made in ``metrics``: hand it to the engine's services.
    public var engineMetrics: EngineMetrics { EngineMetrics.prometheus(metrics) }

    public static let routes: [(method: String, path: String, statuses: Set<Int>)] = [
        ("GET", "/healthz", [200]), ("GET", "/readyz", [200, 503]), ("GET", "/metrics", [200]),
        ("POST", "/v1/sagas", [202, 400, 401, 403, 409, 413, 415, 422, 503]), ("GET", "/v1/sagas", [200, 400, 401, 403, 503]),
        ("GET", "/v1/sagas/{id}", [200, 400, 401, 403, 404, 503]), ("GET", "/v1/sagas/{id}/history", [200, 400, 401, 403, 404, 503]),
        ("POST", "/v1/sagas/{id}/cancel", [202, 400, 401, 403, 404, 409, 413, 415, 422, 503]),
        ("POST", "/v1/sagas/{id}/actions", [200, 400, 401, 403, 404, 409, 413, 415, 422, 503]),
        ("POST", "/v1/sagas/{id}/signals/{name}", [200, 202, 400, 401, 403, 404, 409, 413, 415, 422, 503]),
        ("GET", "/v1/workflows", [200, 401, 403, 503]), ("POST", "/v1/workflows", [200, 201, 400, 401, 403, 409, 413, 415, 422, 503]),
        ("GET", "/v1/workflows/{name}", [200, 401, 403, 404, 503]),
        ("POST", "/v1/workflows/{name}/simulate", [200, 400, 401, 403, 404, 413, 415, 422, 503]),
        ("GET", "/v1/participants", [200, 401, 403, 503]),
    ]

    public func router() -> Router<BatonRequestContext> {
        let router = Router(context: BatonRequestContext.self)
        if let origin = configuration.corsOrigin {
            router.add(
                middleware: CORSMiddleware(
                    allowOrigin: .custom(origin),
                    allowHeaders: [
                        .accept, .authorization, .contentType, HTTPField.Name("Idempotency-Key")!,
                        CorrelationMiddleware<BatonRequestContext>.header,
                        CorrelationMiddleware<BatonRequestContext>.traceparentHeader,
                    ],
                    allowMethods: [.get, .post, .options], exposedHeaders: ["Location", "X-Correlation-ID", "Retry-After"],
                    maxAge: .seconds(600)))
        }
        router.add(middleware: CorrelationMiddleware())
        router.add(
            middleware: ProblemMiddleware(
                routes: Self.routes.map { ($0.method, $0.path) }, classify: StoreAvailability.problem, describe: StoreErrors.describe)
        )
        router.get("/healthz") { _, _ in Render.json(["status": "ok"]) }
        router.get("/metrics") { _, _ in
            // Sampled figures (sagas in flight, the outbox) are read from the store at each scrape.
            try? await engineMetrics.sample(store)
            await sampleParticipants()
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
        v1.add(middleware: AuthenticationMiddleware(policy: configuration.access))
        v1.post("sagas") { request, context in
            let caller = try context.require(.sagasWrite)
            return try await withDeadline(request) { try await submit(request, context, by: caller) }
        }
        v1.get("sagas") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await list(request) }
        }
        v1.get("sagas/:id") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await get(request, context) }
        }
        v1.get("sagas/:id/history") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await history(request, context) }
        }
        v1.post("sagas/:id/cancel") { request, context in
            let caller = try context.require(.sagasWrite)
            return try await withDeadline(request) { try await cancel(request, context, by: caller) }
        }
        v1.post("sagas/:id/actions") { request, context in
            let caller = try context.require(.operator)
            return try await withDeadline(request) { try await act(request, context, by: caller) }
        }
        v1.post("sagas/:id/signals/:name") { request, context in
            let caller = try context.require(.sagasSignal)
            return try await withDeadline(request) { try await signal(request, context, by: caller) }
        }
        v1.get("workflows") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await workflows() }
        }
        v1.post("workflows") { request, context in
            let caller = try context.require(.workflowsWrite)
            return try await withDeadline(request) { try await register(request, context, by: caller) }
        }
        v1.get("workflows/:name") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await workflow(context) }
        }
        v1.post("workflows/:name/simulate") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await simulate(request, context) }
        }
        v1.get("participants") { request, context in
            _ = try context.require(.sagasRead)
            return try await withDeadline(request) { try await participantList() }
        }
        Console(api: self, messaging: messaging, logger: Logger(label: "baton.console")).add(to: router)
        return router
    }

    // MARK: - Sagas

    func submit(_ request: Request, _ context: BatonRequestContext, by caller: APIIdentity) async throws -> Response {
        let body = try await jsonBody(request)
        guard case .object(let fields) = body else { throw APIProblem.badRequest("the body must be a JSON object") }
        guard case .string(let workflow)? = fields["workflow"], !workflow.isEmpty else {
            throw APIProblem.badRequest("\"workflow\" (a workflow name) is required", code: "invalid-request")
        }
        guard WorkflowDefinition.isName(workflow, limits: configuration.definitionLimits) else {
            throw APIProblem(
                .unprocessableContent, code: "unknown-workflow", title: "Unknown workflow",
                detail: "no workflow can be named '\(workflow.prefix(80))': \(WorkflowDefinition.nameRule(configuration.definitionLimits))")
        }
        if let input = fields["input"] {
            guard case .object = input else {
                throw APIProblem.badRequest("\"input\" must be a JSON object, not \(input.typeName)", code: "invalid-request")
            }
            let size = input.canonicalJSON.utf8.count
            guard size <= configuration.maximumInputBytes else {
                throw APIProblem(
                    .contentTooLarge, code: "input-too-large", title: "The saga input is too large",
                    detail: "the input is \(size) bytes as JSON; a saga's input is limited to \(configuration.maximumInputBytes) bytes")
            }
        }
        var version: Int?
        if let value = fields["version"] {
            guard case .integer(let number) = value, number > 0, number <= configuration.definitionLimits.maximumVersion else {
                throw APIProblem.badRequest(
                    "\"version\" must be an integer from 1 to \(configuration.definitionLimits.maximumVersion)", code: "invalid-request")
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
        let correlationID = request.headers[CorrelationMiddleware<BatonRequestContext>.header]
        let traceparent = request.headers[CorrelationMiddleware<BatonRequestContext>.traceparentHeader]
        do {
            let creation = try await runner.submit(
                workflow: workflow, version: version, input: fields["input"] ?? [:], idempotencyKey: idempotencyKey,
                correlationID: correlationID, traceparent: traceparent, actor: caller.name)
            let saga = creation.record.saga
            var headers = HTTPFields()
            headers[.location] = "/v1/sagas/\(saga.id)"
            if case .existing = creation { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
            return Render.json(
                ["id": .string(saga.id), "status": .string(saga.status.rawValue), "links": Render.links(saga.id)], status: .accepted,
                headers: headers)
        } catch let error as SagaRunner.SubmissionError {
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

    func get(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        var record = try await existingSaga(id)
        if let wait = request.uri.queryParameters["wait"] {
            let duration: SagaDuration
            do {
                duration = try SagaDuration.parse(String(wait))
            } catch {
                throw APIProblem.badRequest("wait must be a duration such as 500ms, 10s or 1m, got '\(wait.prefix(64))': \(error)")
            }
            let limit = min(Duration.milliseconds(duration.milliseconds), configuration.maximumWait)
            let end = ContinuousClock.now + limit
            // On SIGTERM the wait ends early with the saga as it is, as when it runs out: the drain
            // waits for requests in flight, and must not wait out a client's minute.
            while !record.saga.status.isTerminal && ContinuousClock.now < end && !Task.isShuttingDownGracefully {
                try await Task.sleep(for: .milliseconds(100))
                record = try await existingSaga(id)
            }
        }
        let definition = try? await runner.definition(name: record.saga.workflow, version: record.saga.workflowVersion)
        var rendered = Render.saga(record, definition: definition, children: try await store.children(of: record.saga.id))
        if case .object(var fields) = rendered {
            fields["warnings"] = .array(await warnings(record, definition: definition).map(JSONValue.string))
            rendered = .object(fields)
        }
        return Render.json(rendered)
    }

    func history(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let after = try integer(request, "after", default: 0, range: 0...Int(Int32.max))
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
        if let workflow = query["workflow"].map(String.init) {
            guard WorkflowDefinition.isName(workflow, limits: configuration.definitionLimits) else {
                throw APIProblem.badRequest(
                    "workflow must be a workflow name, got '\(workflow.prefix(80))': \(WorkflowDefinition.nameRule(configuration.definitionLimits))"
                )
            }
            list.workflow = workflow
        }
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
            return .runningLongerThan(try stuckDuration(duration, in: text))
        case ("retries", let count?):
            if let count = Int32(count), count >= 0 { return .retriedMoreThan(Int(count)) }
            throw APIProblem.badRequest(
                "bad stuck filter '\(text.prefix(80))': the count after retries: must be a whole number from 0 to \(Int32.max)")
        case ("awaiting", let duration?):
            return .awaitingReplySince(.now - (try stuckDuration(duration, in: text)))
        default: break
        }
        throw APIProblem.badRequest(
            "unknown stuck filter '\(text)': expected suspended, compensating, running:<duration>, retries:<n> or awaiting:<duration>")
    }

    func stuckDuration(_ text: String, in filter: String) throws -> SagaDuration {
        do {
            return try SagaDuration.parse(text)
        } catch {
            throw APIProblem.badRequest("bad stuck filter '\(filter.prefix(80))': the duration '\(text.prefix(64))' is \(error)")
        }
    }

    func cancel(_ request: Request, _ context: BatonRequestContext, by caller: APIIdentity) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let body = try await optionalJSONBody(request)
        if let body, body.objectValue == nil { throw APIProblem.badRequest("the body must be a JSON object", code: "invalid-request") }
        let reason = try text(body, "reason", required: false) ?? "cancelled over the API"
        let (record, outcome) = try await runner.cancel(id: id, reason: reason, actor: caller.name)
        if case .rejected(let why) = outcome {
            throw APIProblem(.conflict, code: "cannot-cancel", title: "The saga cannot be cancelled", detail: why)
        }
        return Render.json(
            Render.saga(record, definition: runner.cached(name: record.saga.workflow, version: record.saga.workflowVersion)),
            status: .accepted)
    }

    /// `POST /v1/sagas/{id}/signals/{name}`: `{"payload": …}` (the waiting step's output; absent
    /// means `null`) or `{"failed": {"code": …, "message": …}}`; `Idempotency-Key` names the signal
    /// for retries (without one, the body does). 202 when it is new, 200 when it was already received.
    func signal(_ request: Request, _ context: BatonRequestContext, by caller: APIIdentity) async throws -> Response {
        let id = try context.parameters.require("id")
        let name = try context.parameters.require("name")
        guard WorkflowDefinition.isIdentifier(name), name.count <= 64 else {
            throw APIProblem.badRequest("'\(name.prefix(80))' is not a signal name: letters, digits, '-' and '_'", code: "invalid-request")
        }
        _ = try await existingSaga(id)
        let body = try await optionalJSONBody(request) ?? [:]
        guard case .object(let fields) = body else {
            throw APIProblem.badRequest("the body must be a JSON object", code: "invalid-request")
        }
        if let unknown = fields.keys.sorted().first(where: { $0 != "payload" && $0 != "failed" }) {
            throw APIProblem.badRequest("unknown member \"\(unknown.prefix(64))\": a signal has payload or failed", code: "invalid-request")
        }
        let outcome: SagaSignal.Outcome
        if let failed = fields["failed"] {
            guard fields["payload"] == nil else {
                throw APIProblem.badRequest("a signal has payload or failed, not both", code: "invalid-request")
            }
            guard failed.objectValue != nil, let code = try text(failed, "code", required: true), !code.isEmpty else {
                throw APIProblem.badRequest("\"failed\" must be {\"code\": …, \"message\": …} with a code", code: "invalid-request")
            }
            outcome = .failed(code: code, message: try text(failed, "message", required: false) ?? "")
        } else {
            outcome = .succeeded(payload: fields["payload"] ?? .null)
        }
        let key =
            try request.headers[HTTPField.Name("Idempotency-Key")!].map { key in
                guard !key.isEmpty, key.count <= 255 else {
                    throw APIProblem.badRequest("Idempotency-Key must be 1 to 255 characters", code: "invalid-request")
                }
                return key
            } ?? "sha256:" + SHA256.hash(data: Data(body.canonicalJSON.utf8)).map { String(format: "%02x", $0) }.joined()
        let record: SagaRecord
        let result: SagaTransition.Outcome
        do {
            (record, result) = try await runner.signal(
                id: id, SagaSignal(name: name, key: key, outcome: outcome, receivedAt: .now), actor: caller.name)
        } catch SagaStoreError.unstorableValue(let reason) {
            throw APIProblem(
                .unprocessableContent, code: "unstorable-payload", title: "The signal cannot be stored",
                detail: "the payload holds a value the database cannot store (\(reason)); remove NUL characters (\\u0000) from strings")
        }
        switch result {
        case .rejected(let why):
            throw APIProblem(.conflict, code: "signal-refused", title: "The saga cannot take this signal", detail: why)
        case .ignored:
            return Render.json(
                Render.saga(record, definition: runner.cached(name: record.saga.workflow, version: record.saga.workflowVersion)),
                status: .ok)
        case .applied:
            return Render.json(
                Render.saga(record, definition: runner.cached(name: record.saga.workflow, version: record.saga.workflowVersion)),
                status: .accepted)
        }
    }

    func act(_ request: Request, _ context: BatonRequestContext, by caller: APIIdentity) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await existingSaga(id)
        let body = try await jsonBody(request)
        guard body.objectValue != nil else { throw APIProblem.badRequest("the body must be a JSON object", code: "invalid-request") }
        guard let name = body.value(at: ["action"])?.stringValue else {
            throw APIProblem.badRequest("\"action\" is required: retry, skip, resolve or compensate", code: "invalid-request")
        }
        guard let reason = try text(body, "reason", required: true), !reason.isEmpty else {
            throw APIProblem.badRequest(
                "\"reason\" is required: every operator action is recorded with its reason", code: "invalid-request")
        }
        let action: OperatorAction
        switch name {
        case "retry": action = .retry(reason: reason)
        case "resolve": action = .resolve(reason: reason)
        case "compensate": action = .compensate(reason: reason)
        case "skip":
            guard let step = try text(body, "step", required: true) else {
                throw APIProblem.badRequest("\"step\" is required to skip a step", code: "invalid-request")
            }
            action = .skip(step: step, reason: reason)
        default:
            throw APIProblem.badRequest("unknown action '\(name)': expected retry, skip, resolve or compensate", code: "invalid-request")
        }
        let (record, outcome) = try await runner.act(on: id, action, actor: caller.name)
        if case .rejected(let why) = outcome {
            throw APIProblem(.conflict, code: "action-refused", title: "The action is not allowed now", detail: why)
        }
        return Render.json(Render.saga(record, definition: runner.cached(name: record.saga.workflow, version: record.saga.workflowVersion)))
    }

    /// A string member of a request body: text the database can store (no NUL), within the reason
    /// length limit. - Returns: `nil` when absent and not required.
    func text(_ body: JSONValue?, _ name: String, required: Bool) throws -> String? {
        guard let value = body?.value(at: [name]) else {
            if required { throw APIProblem.badRequest("\"\(name)\" is required", code: "invalid-request") }
            return nil
        }
        guard case .string(let text) = value else {
            throw APIProblem.badRequest("\"\(name)\" must be a string, not \(value.typeName)", code: "invalid-request")
        }
        guard text.count <= configuration.maximumReasonLength else {
            throw APIProblem(
                .unprocessableContent, code: "text-too-long", title: "A text field is too long",
                detail: "\"\(name)\" is \(text.count) characters long; at most \(configuration.maximumReasonLength) are allowed")
        }
        guard !text.unicodeScalars.contains("\u{0}") else {
            throw APIProblem(
                .unprocessableContent, code: "unstorable-text", title: "A text field cannot be stored",
                detail: "\"\(name)\" holds a NUL character (\\u0000), which cannot be stored")
        }
        return text
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

    func workflow(_ context: BatonRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard WorkflowDefinition.isName(name, limits: configuration.definitionLimits) else {
            throw APIProblem.notFound("no workflow named '\(name.prefix(80))'")
        }
        let versions = try await store.definitionVersions(name: name)
        guard !versions.isEmpty else { throw APIProblem.notFound("no workflow named '\(name)'") }
        return Render.json(["name": .string(name), "versions": .array(versions.map(Render.definition))])
    }

    /// The most runs one simulation over the API may ask for: it runs on the server's CPU.
    static let maximumSimulationRuns = 2_000

    /// `POST /v1/workflows/{name}/simulate`: `baton workflows simulate` for a registered version.
    func simulate(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard WorkflowDefinition.isName(name, limits: configuration.definitionLimits) else {
            throw APIProblem.notFound("no workflow named '\(name.prefix(80))'")
        }
        let body = try await optionalJSONBody(request) ?? .object([:])
        guard let fields = body.objectValue else { throw APIProblem.badRequest("the body must be a JSON object") }
        let known: Set = ["version", "runs", "seed", "faults", "accept", "input"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIProblem.badRequest("unknown field '\(unknown.prefix(80))'; the fields are \(known.sorted().joined(separator: ", "))")
        }
        func integer(_ field: String, in range: ClosedRange<Int64>) throws -> Int64? {
            guard let value = fields[field] else { return nil }
            guard case .integer(let number) = value, range.contains(number) else {
                throw APIProblem.badRequest("\(field) must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        func strings(_ field: String) throws -> [String] {
            guard let value = fields[field] else { return [] }
            guard case .array(let elements) = value, elements.count <= 100,
                case let texts = elements.compactMap(\.stringValue), texts.count == elements.count
            else { throw APIProblem.badRequest("\(field) must be an array of at most 100 strings") }
            return texts
        }
        let runs = Int(try integer("runs", in: 1...Int64(Self.maximumSimulationRuns)) ?? 500)
        let seed: UInt64
        switch fields["seed"] {
        case nil: seed = WorkflowSimulator.randomSeed()
        case .integer(let number)? where number >= 0: seed = UInt64(number)
        case .string(let text)? where WorkflowSimulator.seed(parsing: text) != nil: seed = WorkflowSimulator.seed(parsing: text)!
        default: throw APIProblem.badRequest("seed must be a non-negative integer, or one written as a string of at most 20 digits")
        }
        let faults: SimulationFaults
        let acceptances: [SimulationReport.Acceptance]
        do {
            faults = try SimulationFaults.parse(try strings("faults"))
            acceptances = try strings("accept").map { text throws(SimulationFaults.ParseError) in
                try SimulationReport.Acceptance(parsing: text)
            }
        } catch let error as SimulationFaults.ParseError {
            throw APIProblem.badRequest("\(error)")
        }
        let versions = try await store.definitionVersions(name: name)
        guard !versions.isEmpty else { throw APIProblem.notFound("no workflow named '\(name)'") }
        let wanted = try integer("version", in: 1...Int64(Int32.max))
        guard let stored = wanted.map({ version in versions.first { $0.definition.version == Int(version) } }) ?? versions.first
        else { throw APIProblem.notFound("\(name) has no version \(wanted ?? 0)") }
        if let input = fields["input"], let problems = stored.definition.input?.violations(of: input), !problems.isEmpty {
            throw APIProblem.badRequest("input does not fit the workflow's input schema: \(problems.joined(separator: "; "))")
        }
        var report = try await simulation(
            of: stored.definition, WorkflowSimulator.Options(runs: runs, seed: seed, faults: faults, input: fields["input"]))
        report.accept(acceptances)
        return Render.json(report.json)
    }

    /// A simulation on the server, for the API and the console: seconds of CPU at most
    /// (``maximumSimulationRuns``), on NIO's blocking pool rather than a thread the server's tasks
    /// share.
    func simulation(of definition: WorkflowDefinition, _ options: WorkflowSimulator.Options) async throws -> SimulationReport {
        try await NIOThreadPool.singleton.runIfActive { WorkflowSimulator(definition: definition).simulate(options) }
    }

    func register(_ request: Request, _ context: BatonRequestContext, by caller: APIIdentity) async throws -> Response {
        let buffer = try await collect(request)
        try JSONBodies.requireContentType(request, oneOf: ["application/json"] + Self.yamlMediaTypes)
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let format: WorkflowFormat = Self.yamlMediaTypes.contains(where: contentType.hasPrefix) ? .yaml : .json
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw APIProblem.badRequest("the definition is not UTF-8 text", code: "malformed-body")
        }
        let definition: WorkflowDefinition
        do {
            definition = try WorkflowDefinition.parse(
                text, format: format, source: "request body", limits: configuration.definitionLimits)
        } catch {
            throw APIProblem(
                .unprocessableContent, code: "invalid-workflow", title: "The workflow definition is invalid",
                detail: error.issues.map(\.description).joined(separator: "; "),
                extra: ["errors": .array(error.issues.map { .string($0.description) })])
        }
        do {
            let registration = try await store.registerDefinition(
                definition, source: text, now: .now, registeredBy: caller.name, replacingUnused: configuration.replacesUnusedVersions)
            var headers = HTTPFields()
            headers[.location] = "/v1/workflows/\(definition.name)"
            switch registration {
            case .registered:
                await onRegistered(definition)
                return Render.json(Render.definition(registration.stored), status: .created, headers: headers)
            case .replaced:
                runner.forgetDefinition(name: definition.name, version: definition.version)
                await onRegistered(definition)
                return Render.json(Render.definition(registration.stored), status: .ok, headers: headers)
            case .alreadyRegistered:
                return Render.json(Render.definition(registration.stored), status: .ok, headers: headers)
            }
        } catch let error as SagaStoreError {
            switch error {
            case .definitionConflict:
                throw APIProblem(.conflict, code: "version-exists", title: "This workflow version exists", detail: error.description)
            case .definitionInUse:
                throw APIProblem(
                    .conflict, code: "version-in-use", title: "Sagas have run this workflow version", detail: error.description)
            case .unstorableValue(let reason):
                throw APIProblem(
                    .unprocessableContent, code: "invalid-workflow", title: "The workflow definition cannot be stored",
                    detail: "it holds a value the database cannot store (\(reason))")
            default:
                throw error
            }
        }
    }

    static let yamlMediaTypes = ["application/yaml", "application/x-yaml", "text/yaml"]

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

extension EngineMetrics {
    /// The engine's metrics in a Prometheus registry, with the batch-size histogram's buckets.
    static func prometheus(_ registry: PrometheusCollectorRegistry) -> EngineMetrics {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets[EngineMetrics.batchSizeLabel] = EngineMetrics.batchSizeBuckets
        return EngineMetrics(factory: factory)
    }
}
