import ArgumentParser
import BatonCore
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Options every client command shares: where the server is and how to authenticate.
struct ServerOptions: ParsableArguments {
    @Option(help: "The Baton server. Env: BATON_URL (default http://127.0.0.1:8080).")
    var server: String?

    @Option(help: "API token, sent as a bearer token. Env: BATON_TOKEN.")
    var token: String?

    @Flag(help: "Print the server's JSON instead of a table.")
    var json = false

    var client: APIClient {
        let environment = ProcessInfo.processInfo.environment
        return APIClient(
            base: server ?? environment["BATON_URL"] ?? "http://127.0.0.1:8080", token: token ?? environment["BATON_TOKEN"])
    }
}

/// The HTTP API, for the client commands.
struct APIClient {
    let base: String
    let token: String?

    /// The server refused the request: its problem's detail, and the status.
    struct Failure: Error, CustomStringConvertible {
        var status: Int
        var detail: String
        var description: String { "\(detail) (HTTP \(status))" }
    }

    func request(
        _ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json", headers: [String: String] = [:]
    )
        async throws -> (status: Int, body: JSONValue, headers: [String: String])
    {
        guard let url = URL(string: base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path) else {
            throw ValidationError("not a server URL: \(base)")
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
            throw ValidationError("cannot reach \(base): \(error.localizedDescription)")
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

    func get(_ path: String) async throws -> JSONValue { try await request("GET", path).body }
}

/// Plain-text rendering of API values for people.
enum Table {
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let text)?: text
        case .integer(let number)?: String(number)
        case .null?, nil: "-"
        case let other?: other.canonicalJSON
        }
    }

    static func print(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            Swift.print(
                row.enumerated().map { index, cell in cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
    }

    static func saga(_ saga: JSONValue) {
        Swift.print("saga      \(text(saga.value(at: ["id"])))")
        Swift.print("workflow  \(text(saga.value(at: ["workflow"]))) v\(text(saga.value(at: ["version"])))")
        Swift.print("status    \(text(saga.value(at: ["status"])))")
        if let reason = saga.value(at: ["suspension_reason"]), reason != .null { Swift.print("suspended \(text(reason))") }
        if let error = saga.value(at: ["last_error"]), error != .null { Swift.print("error     \(text(error))") }
        Swift.print("")
        var rows = [["STEP", "STATUS", "ATTEMPT", "COMPENSATION", "ERROR"]]
        if case .array(let steps)? = saga.value(at: ["steps"]) {
            for step in steps {
                rows.append([
                    text(step.value(at: ["name"])), text(step.value(at: ["status"])), text(step.value(at: ["attempt"])),
                    text(step.value(at: ["compensation_attempt"])), text(step.value(at: ["error", "code"])),
                ])
            }
        }
        print(rows)
    }
}
