import BatonCore
import BatonHTTP
import Hummingbird

extension Payments {
    /// The Payments service's HTTP API (`docs/participants.md`). `confirm` and `fail` are the
    /// payment provider's callbacks; `decided` is told of each decision, to send it to the saga.
    public func router(decided: @escaping @Sendable () -> Void = {}) -> Router<BasicRequestContext> {
        let router = ServiceHTTP.router()
        router.post("/payments/start") { request, _ in
            let payment = try await start(try PaymentRequest(try await ServiceHTTP.object(request)))
            return JSONBodies.response(payment.json, status: .created, headers: [.location: "/payments/\(payment.id)"])
        }
        router.post("/payments/{id}/confirm") { _, context in
            let payment = try await confirm(try ServiceHTTP.id(context))
            decided()
            return JSONBodies.response(payment.json)
        }
        router.post("/payments/{id}/fail") { request, context in
            let body = try await ServiceHTTP.object(request)
            let reason = body.value(at: ["reason"])?.stringValue ?? "declined by the payment provider"
            let payment = try await fail(try ServiceHTTP.id(context), reason: reason)
            decided()
            return JSONBodies.response(payment.json)
        }
        router.get("/payments/{id}") { _, context in
            let id = try ServiceHTTP.id(context)
            guard let payment = try await payment(id) else { throw CheckoutError.notFound("no payment \(id)") }
            return JSONBodies.response(payment.json)
        }
        return router
    }
}
