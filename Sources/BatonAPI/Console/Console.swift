import BatonCore
import BatonEngine
import BatonHTTP
import BatonStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore
import ServiceLifecycle

/// The web console at `/ui` (docs/console.md): server-rendered pages over the same store, runner
/// and credentials as the API, with a small script for local times and live updates.
///
/// A browser cannot send the API's `Authorization` header when it follows a link, so the console
/// keeps the caller's API token or JWT in a cookie (HttpOnly, SameSite=Strict, path `/ui`) and
/// reads it as that header; a server with no credentials configured lets everyone in, as the API
/// does. Every page asks for the scope its API route needs, and offers only the actions the
/// caller's scopes allow. A form posted from another site is refused (Origin and Sec-Fetch-Site).
struct Console: Sendable {
    static let cookieName = "baton_console"

    let api: BatonAPI
    let messaging: MessagingReads
    let feed: ConsoleFeed
    let pages: ConsolePages

    init(api: BatonAPI, messaging: MessagingReads, logger: Logger) {
        self.api = api
        self.messaging = messaging
        self.feed = ConsoleFeed(store: api.store, logger: logger)
        self.pages = ConsolePages()
    }

    var access: APIAccessPolicy { api.configuration.access }

    func add(to router: Router<BatonRequestContext>) {
        router.get("/") { _, _ in Response.redirect(to: "/ui", type: .found) }
        router.get("/ui/assets/console.css") { _, _ in Self.asset(PackageResources.console_css, type: "text/css; charset=utf-8") }
        router.get("/ui/assets/console.js") { _, _ in
            Self.asset(PackageResources.console_js, type: "text/javascript; charset=utf-8")
        }
        router.get("/ui/login") { request, _ in
            if access.isOpen { return Response.redirect(to: "/ui", type: .found) }
            return pages.render("login", base(nil, nav: nil).merging(["next": safeNext(request.uri.queryParameters["next"])]) { $1 })
        }
        router.post("/ui/login") { request, context in
            try requireSameOrigin(request)
            return try await login(request, context)
        }
        router.post("/ui/logout") { request, _ in
            try requireSameOrigin(request)
            var response = Response.redirect(to: access.isOpen ? "/ui" : "/ui/login", type: .found)
            response.setCookie(sessionCookie(value: "", maxAge: 0, secure: Self.overHTTPS(request)))
            return response
        }

        let ui = router.group("ui").add(middleware: ConsoleAuthentication(policy: access, renderer: pages))
        ui.get("") { request, context in try await page(request, context, .sagasRead) { try await overview(context) } }
        ui.get("sagas") { request, context in
            try await page(request, context, .sagasRead) { try await sagaList(request, context, rowsOnly: false) }
        }
        ui.get("sagas/rows") { request, context in
            try await page(request, context, .sagasRead) { try await sagaList(request, context, rowsOnly: true) }
        }
        ui.get("sagas/:id") { request, context in
            try await page(request, context, .sagasRead) {
                try await sagaPage(
                    try context.parameters.require("id"), context, flash: request.uri.queryParameters["done"].map(String.init))
            }
        }
        ui.post("sagas/:id/actions") { request, context in
            try requireSameOrigin(request)
            return try await page(request, context, .operator) { try await act(request, context) }
        }
        ui.post("sagas/:id/cancel") { request, context in
            try requireSameOrigin(request)
            return try await page(request, context, .sagasWrite) { try await cancel(request, context) }
        }
        ui.post("sagas/:id/signals") { request, context in
            try requireSameOrigin(request)
            return try await page(request, context, .sagasSignal) { try await signal(request, context) }
        }
        ui.get("workflows") { request, context in try await page(request, context, .sagasRead) { try await workflows(context) } }
        ui.get("workflows/:name") { request, context in
            try await page(request, context, .sagasRead) { try await workflow(request, context) }
        }
        ui.get("dead-letters") { request, context in
            try await page(request, context, .sagasRead) { try await deadLetters(context) }
        }
        ui.get("events") { request, context in
            _ = try context.require(.sagasRead)
            return try await events(saga: request.uri.queryParameters["saga"].map(String.init))
        }
    }

    // MARK: - Pages

    /// Runs a page's work for a caller holding `scope`, within the API's request deadline; a
    /// problem it meets is shown as a page with its status, not as JSON.
    func page(
        _ request: Request, _ context: BatonRequestContext, _ scope: APIScope, _ work: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        do {
            _ = try context.require(scope)
            return try await api.withDeadline(request, work)
        } catch let problem as APIProblem {
            return problemPage(problem, context)
        } catch {
            guard let problem = StoreAvailability.problem(error) else { throw error }
            return problemPage(problem, context)
        }
    }

    func problemPage(_ problem: APIProblem, _ context: BatonRequestContext) -> Response {
        pages.render(
            "problem", base(context.identity, nav: nil).merging(["heading": problem.title, "detail": problem.detail]) { $1 },
            status: problem.status)
    }

    /// What every page's layout needs: the caller and the current section.
    func base(_ identity: APIIdentity?, nav: String?) -> [String: Any] {
        var view: [String: Any] = ["signedIn": !access.isOpen && identity != nil]
        if let nav { view["nav"] = [nav: true] }
        if let identity {
            view["caller"] = ["name": identity.name, "scopes": identity.scopes.sorted().map(\.rawValue).joined(separator: " ")]
        }
        return view
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=300"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    // MARK: - Signing in

    func login(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let form = try await FormFields.read(request, limit: 16 * 1024)
        let next = safeNext(form["next"].map { Substring($0) })
        var view = base(nil, nav: nil)
        view["next"] = next
        guard let token = form["token"]?.trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            view["error"] = "Enter an API token or a JWT."
            return pages.render("login", view, status: .badRequest)
        }
        // Only what a cookie may hold (RFC 6265): API tokens and JWTs always fit.
        let cookieSafe = token.utf8.allSatisfy { byte in byte > 0x20 && byte < 0x7F && !";,\"\\".utf8.contains(byte) }
        guard token.utf8.count <= 8192, cookieSafe, let identity = try? await access.authenticate("Bearer \(token)") else {
            view["error"] = "That token is not valid here (unknown, expired or malformed)."
            return pages.render("login", view, status: .unauthorized)
        }
        var response = Response.redirect(to: next, type: .normal)
        response.setCookie(sessionCookie(value: token, maxAge: 12 * 3600, secure: Self.overHTTPS(request)))
        context.logger.info("console sign-in", metadata: ["caller": "\(identity.name)"])
        return response
    }

    /// The console's cookie: sent back only to `/ui`, never to scripts, never from another site's
    /// page, and over HTTPS only when the console is reached over HTTPS.
    func sessionCookie(value: String, maxAge: Int, secure: Bool) -> Cookie {
        Cookie(name: Self.cookieName, value: value, maxAge: maxAge, path: "/ui", secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// Whether the browser reached the console over HTTPS: TLS ends at a proxy in front of Baton,
    /// which says so in `X-Forwarded-Proto` (docs/operations.md, Security).
    static func overHTTPS(_ request: Request) -> Bool {
        request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https" || request.uri.scheme == .https
    }

    /// A path inside the console to go back to after signing in; anything else is the overview.
    func safeNext(_ next: Substring?) -> String {
        guard let next, next.hasPrefix("/ui"), !next.hasPrefix("//"), !next.contains("\\"), next.count < 512 else { return "/ui" }
        return String(next)
    }

    /// Refuses a form posted from another site's page (cross-site request forgery): the browser says
    /// where the form came from in `Sec-Fetch-Site` and `Origin`.
    func requireSameOrigin(_ request: Request) throws {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" {
            throw APIProblem(.forbidden, code: "cross-site", title: "Refused", detail: "the console takes forms from its own pages only")
        }
        if let origin = request.headers[.origin], let host = request.head.authority {
            let bare = origin.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
            guard origin != "null", bare == host else {
                throw APIProblem(
                    .forbidden, code: "cross-site", title: "Refused", detail: "the console takes forms from its own pages only")
            }
        }
    }
}

/// Reads the console's cookie (or an `Authorization` header) into the caller; a page asked for with
/// no valid credential goes to the sign-in page.
struct ConsoleAuthentication: RouterMiddleware {
    typealias Context = BatonRequestContext
    let policy: APIAccessPolicy
    let renderer: ConsolePages

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let credential = request.headers[.authorization] ?? request.cookies[Console.cookieName].map { "Bearer \($0.value)" }
        if let identity = try? await policy.authenticate(credential) {
            context.identity = identity
            context.logger[metadataKey: "caller"] = "\(identity.name)"
            return try await next(request, context)
        }
        if request.method == .get, !request.uri.path.hasPrefix("/ui/events"), !request.uri.path.hasPrefix("/ui/sagas/rows") {
            let target = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
            return .redirect(to: "/ui/login?" + ConsoleFormat.query([("next", target)]), type: .found)
        }
        return renderer.render(
            "problem", ["heading": "Sign in first", "detail": "this page needs credentials: sign in at /ui/login"], status: .unauthorized)
    }
}

/// The console's templates, compiled once from the files built into the binary.
struct ConsolePages: Sendable {
    let library: MustacheLibrary

    init() {
        let files: [(String, [UInt8])] = [
            ("layout", PackageResources.layout_mustache), ("login", PackageResources.login_mustache),
            ("problem", PackageResources.problem_mustache), ("overview", PackageResources.overview_mustache),
            ("sagas", PackageResources.sagas_mustache), ("saga-rows", PackageResources.saga_rows_mustache),
            ("saga", PackageResources.saga_mustache), ("workflows", PackageResources.workflows_mustache),
            ("workflow", PackageResources.workflow_mustache), ("flow-step", PackageResources.flow_step_mustache),
            ("dead-letters", PackageResources.dead_letters_mustache), ("status-badge", PackageResources.status_badge_mustache),
            ("time", PackageResources.time_mustache),
        ]
        var library = MustacheLibrary()
        for (name, bytes) in files {
            // The templates are part of the source: one that does not parse fails every test at once.
            try! library.register(String(decoding: bytes, as: UTF8.self), named: name)
        }
        self.library = library
    }

    /// The view with every absent value (an `Optional` that is `nil`, in a dictionary or an array)
    /// left out, so that a template's section for it is skipped.
    static func withoutNils(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return nil }
            return withoutNils(wrapped)
        }
        if let dictionary = value as? [String: Any] { return dictionary.compactMapValues(withoutNils) }
        if let array = value as? [Any] { return array.compactMap(withoutNils) }
        return value
    }

    func render(_ template: String, _ view: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(Self.withoutNils(view) ?? [:], withTemplate: template) ?? ""
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        // Scripts only from the console's own file; inline styles place the timeline's bars.
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}

/// The fields of a form posted as `application/x-www-form-urlencoded`.
struct FormFields {
    var fields: [String: String] = [:]

    subscript(_ name: String) -> String? { fields[name] }

    static func read(_ request: Request, limit: Int) async throws -> FormFields {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw APIProblem(
                .unsupportedMediaType, code: "unsupported-media-type", title: "Unsupported form",
                detail: "post the console's forms as application/x-www-form-urlencoded")
        }
        let buffer = try await JSONBodies.collect(request, limit: limit)
        return FormFields(encoded: String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    init(encoded: String) {
        for pair in encoded.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            guard let name = parts.first.map(decode), fields[name] == nil else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) : ""
        }
    }
}
