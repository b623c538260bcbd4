import BatonCore
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A client of Baton's HTTP API (`docs/openapi.yaml`), for the `baton` commands and for services
/// that start sagas (the demo's Transactions service does).
public struct BatonClient: Sendable {
    public let base: String
    public let token: String?

    public init(base: String, token: String? = nil) {
        self.base = base
        self.token = token
    }

    /// The server refused the request: its problem's detail, and the status.
    public struct Failure: Error, CustomStringConvertible {
        public var status: Int
        public var detail: String
        public var description: String { "\(detail) (HTTP \(status))" }

        public init(status: Int, detail: String) {
            self.status = status
            self.detail = detail
        }
    }

    /// The server could not be reached, or its address is not a URL.
    public struct Unreachable: Error, CustomStringConvertible {
        public var description: String
    }

    public func request(
        _ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json", headers: [String: String] = [:]
    )
        async throws -> (status: Int, body: JSONValue, headers: [String: String])
    {
        guard let url = URL(string: base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path) else {
            throw Unreachable(description: "not a server URL: \(base)")
        }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Unreachable(description: "cannot reach \(base): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
        guard (200..<300).contains(status) else {
            throw Failure(status: status, detail: json.value(at: ["detail"])?.stringValue ?? String(decoding: data, as: UTF8.self))
        }
        var fields: [String: String] = [:]
        for (key, value) in (response as? HTTPURLResponse)?.allHeaderFields ?? [:] { fields["\(key)".lowercased()] = "\(value)" }
        return (status, json, fields)
    }

    public func get(_ path: String) async throws -> JSONValue { try await request("GET", path).body }
}
