import BatonCore
import BatonEngine
import BatonHTTP
import BatonStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

/// The console's changes (operator actions, cancel, signals), each asked for with a reason and a
/// confirmation and recorded with the caller, and its stream of live updates.
extension Console {
    /// The form's reason and confirmation: both are required for every change.
    func reasonAndConfirmation(_ form: FormFields) throws -> String {
        guard form["confirm"] == "yes" else {
            throw APIProblem.badRequest("tick the confirmation box: every action is confirmed before it is taken")
        }
        guard let reason = form["reason"]?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else {
            throw APIProblem.badRequest("give a reason: every action is recorded with its reason and your name")
        }
        guard reason.count <= api.configuration.maximumReasonLength, !reason.unicodeScalars.contains("\u{0}") else {
            throw APIProblem.badRequest("the reason must be at most \(api.configuration.maximumReasonLength) characters of text")
        }
        return reason
    }

    /// One change asked for with a form: the caller must hold `scope` and the saga must exist; the
    /// form's reason and confirmation are checked, then `apply` makes the change and says what to
    /// show. Taken, the saga is shown again with a note (a redirect, so that reloading the page
    /// does not post it twice); refused, or with a mistake in the form, it is shown with why.
    func change(
        _ request: Request, _ context: BatonRequestContext, _ scope: APIScope, limit: Int = 16 * 1024,
        _ apply: (_ id: String, _ form: FormFields, _ reason: String, _ caller: APIIdentity) async throws -> (
            outcome: SagaTransition.Outcome, done: String
        )
    ) async throws -> Response {
        let id = try context.parameters.require("id")
        let caller = try context.require(scope)
        _ = try await api.existingSaga(id)
        let form = try await FormFields.read(request, limit: limit)
        do {
            let (outcome, done) = try await apply(id, form, try reasonAndConfirmation(form), caller)
            if case .rejected(let why) = outcome { return try await sagaPage(id, context, error: why, status: .conflict) }
            return .redirect(to: "/ui/sagas/\(id)?done=\(done)", type: .normal)
        } catch let problem as APIProblem {
            return try await sagaPage(id, context, error: problem.detail, status: problem.status)
        }
    }

    func act(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        try await change(request, context, .operator) { id, form, reason, caller in
            let name = form["action"] ?? ""
            let action: OperatorAction
            switch name {
            case "retry": action = .retry(reason: reason)
            case "resolve": action = .resolve(reason: reason)
            case "compensate": action = .compensate(reason: reason)
            case "skip":
                guard let step = form["step"], !step.isEmpty, step.count <= 256 else {
                    throw APIProblem.badRequest("choose the step to skip")
                }
                action = .skip(step: step, reason: reason)
            default: throw APIProblem.badRequest("unknown action: retry, skip, resolve or compensate")
            }
            return (try await api.runner.act(on: id, action, actor: caller.name).1, name)
        }
    }

    func cancel(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        try await change(request, context, .sagasWrite) { id, _, reason, caller in
            (try await api.runner.cancel(id: id, reason: reason, actor: caller.name).1, "cancel")
        }
    }

    func signal(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        try await change(request, context, .sagasSignal, limit: 80 * 1024) { id, form, reason, caller in
            guard let name = form["signal"], WorkflowDefinition.isIdentifier(name), name.count <= 64 else {
                throw APIProblem.badRequest("choose the signal to send")
            }
            let outcome: SagaSignal.Outcome
            if form["outcome"] == "failed" {
                guard let code = form["code"]?.trimmingCharacters(in: .whitespaces), !code.isEmpty, code.count <= 128 else {
                    throw APIProblem.badRequest("a failed signal needs an error code")
                }
                outcome = .failed(code: code, message: String((form["message"] ?? "").prefix(1024)))
            } else {
                let text = (form["payload"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                guard text.utf8.count <= api.configuration.maximumInputBytes else {
                    throw APIProblem.badRequest("the payload is larger than \(api.configuration.maximumInputBytes) bytes")
                }
                do {
                    outcome = .succeeded(payload: text.isEmpty ? .null : try JSONParser.parse(text))
                } catch {
                    throw APIProblem.badRequest("the payload is not JSON: \(error)")
                }
            }
            // Sent from the console, the signal is named by who sent it and why: posting the same
            // form again is the same signal.
            let key = String("console:\(caller.name):\(name):\(reason)".prefix(255))
            let result: SagaTransition.Outcome
            do {
                result = try await api.runner.signal(
                    id: id, SagaSignal(name: name, key: key, outcome: outcome, receivedAt: .now), actor: caller.name
                ).1
            } catch SagaStoreError.unstorableValue(let why) {
                throw APIProblem(
                    .unprocessableContent, code: "unstorable-payload", title: "The signal cannot be stored",
                    detail: "the payload cannot be stored (\(why))")
            }
            if case .ignored = result { return (result, "signal-duplicate") }
            return (result, "signal")
        }
    }

    // MARK: - Live updates

    /// Server-sent events: `change` with the sagas that changed (`[{id, status, revision}]`), for
    /// one saga or for all; a comment every 15 s keeps proxies from closing a quiet stream. The
    /// stream ends when the client goes or the server shuts down.
    func events(saga: String?) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let watched = saga.flatMap { SagaID.isValid($0) ? $0 : nil }
        guard let changes = await feed.subscribe(saga: watched) else {
            throw StoreAvailability.retryLater(
                code: "too-many-streams", title: "Too many live pages",
                detail: "this server already streams updates to \(ConsoleFeed.maximumSubscribers) pages; the page retries by itself")
        }
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 3000\n: watching\n\n"))
                let (texts, text) = AsyncStream.makeStream(of: String.self)
                let relay = Task {
                    for await batch in changes {
                        let data = JSONValue.array(
                            batch.map { ["id": .string($0.id), "status": .string($0.status), "revision": .integer($0.revision)] })
                        text.yield("event: change\ndata: \(data.canonicalJSON)\n\n")
                    }
                    text.finish()
                }
                let keepAlive = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(15))
                        text.yield(": keep-alive\n\n")
                    }
                }
                // A stream never ends by itself: it must not hold up the server's drain.
                let shutdown = Task {
                    try? await gracefulShutdown()
                    text.finish()
                }
                defer {
                    relay.cancel()
                    keepAlive.cancel()
                    shutdown.cancel()
                }
                for await line in texts { try await writer.write(ByteBuffer(string: line)) }
                try await writer.finish(nil)
            })
    }
}
