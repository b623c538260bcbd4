import BatonClient
import BatonCore
import BatonHTTP
import Hummingbird

extension Transactions {
    /// The Transactions service's HTTP API (`docs/participants.md`).
    public func router() -> Router<BasicRequestContext> {
        let router = ServiceHTTP.router()
        router.post("/transactions") { request, _ in
            let body = try await ServiceHTTP.object(request)
            let transaction = try await create(
                customerID: body.value(at: ["customer_id"])?.stringValue ?? "",
                currency: body.value(at: ["currency"])?.stringValue ?? "")
            return JSONBodies.response(transaction.json, status: .created, headers: [.location: "/transactions/\(transaction.id)"])
        }
        router.post("/transactions/{id}/items") { request, context in
            let body = try await ServiceHTTP.object(request)
            guard case .integer(let quantity)? = body.value(at: ["quantity"]) ?? .integer(1),
                case .integer(let unitPrice)? = body.value(at: ["unit_price"])
            else {
                throw CheckoutError.invalid("\"unit_price\" (minor units) and \"quantity\" must be integers")
            }
            let sku = body.value(at: ["sku"])?.stringValue ?? ""
            let item = Item(
                sku: sku, description: body.value(at: ["description"])?.stringValue ?? sku, quantity: Int(clamping: quantity),
                unitPrice: unitPrice)
            return JSONBodies.response(try await addItem(to: try ServiceHTTP.id(context), item).json, status: .created)
        }
        // The caller's trace (or the one CorrelationMiddleware started) goes on to the saga.
        let traceparent = CorrelationMiddleware<BasicRequestContext>.traceparentHeader
        router.post("/transactions/{id}/submit") { request, context in
            do {
                let submitted = try await submit(try ServiceHTTP.id(context), traceparent: request.headers[traceparent])
                return JSONBodies.response(submitted.json, status: .accepted)
            } catch let error as BatonClient.Unreachable {
                throw Self.batonUnavailable(error.description)
            } catch let failure as BatonClient.Failure where failure.status >= 500 {
                throw Self.batonUnavailable(failure.description)
            }
        }
        router.post("/transactions/{id}/cancel") { request, context in
            do {
                let cancelled = try await cancel(try ServiceHTTP.id(context), traceparent: request.headers[traceparent])
                return JSONBodies.response(cancelled.json, status: .accepted)
            } catch let error as BatonClient.Unreachable {
                throw Self.batonUnavailable(error.description)
            }
        }
        router.get("/transactions/{id}") { _, context in
            let id = try ServiceHTTP.id(context)
            guard let transaction = try await transaction(id) else { throw CheckoutError.notFound("no transaction \(id)") }
            return JSONBodies.response(transaction.json)
        }
        return router
    }

    /// Baton could not take the request: the transaction stays submitted, and submitting again
    /// retries (it is idempotent).
    static func batonUnavailable(_ detail: String) -> APIProblem {
        APIProblem(
            .serviceUnavailable, code: "orchestrator-unavailable", title: "The orchestrator is unavailable",
            detail: "\(detail); the request can be repeated safely")
    }
}
