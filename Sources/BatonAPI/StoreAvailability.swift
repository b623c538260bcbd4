import BatonHTTP
import BatonStore
import HTTPTypes

/// The API's answer when the database cannot be reached: 503 with `Retry-After`, not a 500, so
/// that clients and load balancers retry instead of reporting a bug.
enum StoreAvailability {
    /// Seconds a client should wait before trying again.
    static let retryAfterSeconds = 5

    static func problem(_ error: any Error) -> APIProblem? {
        guard StoreErrors.isUnavailable(error) else { return nil }
        return retryLater(
            code: "unavailable", title: "The database is unavailable",
            detail: "the saga store cannot be reached right now; nothing was changed; try again in \(retryAfterSeconds) s")
    }

    /// A 503 that tells the client when to try again (`Retry-After`).
    static func retryLater(code: String, title: String, detail: String) -> APIProblem {
        var headers = HTTPFields()
        headers[.retryAfter] = "\(retryAfterSeconds)"
        return APIProblem(.serviceUnavailable, code: code, title: title, detail: detail, headers: headers)
    }
}
