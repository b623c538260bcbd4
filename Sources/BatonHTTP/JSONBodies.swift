import BatonCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOHTTP1

/// Reading JSON request bodies and writing JSON responses, the same way in every service.
public enum JSONBodies {
    /// `value` as an `application/json` response.
    public static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.canonicalJSON)))
    }

    /// The request's body read as strict JSON (``JSONParser``), or `nil` when it is empty.
    /// - Throws: an ``APIProblem``: 413 over `limit` bytes, 415 when a body is not declared as
    ///   `application/json`, 400 when it is not JSON, 422 when it is JSON Baton refuses (a duplicate
    ///   key, an integer beyond 64 bits), naming where.
    public static func read(_ request: Request, limit: Int) async throws -> JSONValue? {
        let buffer = try await collect(request, limit: limit)
        guard buffer.readableBytes > 0 else { return nil }
        try requireContentType(request, oneOf: ["application/json"])
        do {
            return try buffer.withUnsafeReadableBytes { bytes throws(JSONParseError) in try JSONParser.parse(bytes) }
        } catch let error where error.isSemantic {
            throw APIProblem(
                .unprocessableContent, code: "invalid-json-value", title: "The body holds a value Baton does not accept",
                detail: error.description, extra: ["pointer": .string(error.path)])
        } catch {
            throw APIProblem.badRequest("the body is not valid JSON: \(error.description)", code: "malformed-json")
        }
    }

    /// Refuses a body whose `Content-Type` is not one of `mediaTypes` (parameters such as
    /// `charset=utf-8` are allowed). A browser may send `text/plain` across origins without asking
    /// first (no CORS preflight); refusing it keeps other web pages from driving the API.
    /// - Throws: a 415 ``APIProblem`` naming the accepted types.
    public static func requireContentType(_ request: Request, oneOf mediaTypes: [String]) throws {
        let declared = request.headers[.contentType] ?? ""
        let mediaType =
            declared.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard mediaTypes.contains(mediaType) else {
            throw APIProblem(
                .unsupportedMediaType, code: "unsupported-media-type", title: "Unsupported Content-Type",
                detail:
                    "the body is declared as '\(declared.prefix(100))'; send it as \(mediaTypes.joined(separator: " or "))")
        }
    }

    /// How much of an over-limit body is read and thrown away so that the client sees the 413: a
    /// client that writes its whole body before it reads (Python's urllib) would otherwise be
    /// blocked writing, or reset, and never read the answer. Past this the connection is closed.
    static func drainAllowance(limit: Int) -> Int { max(limit, 1 << 20) * 8 }

    /// The request's whole body.
    /// - Throws: a 413 ``APIProblem`` over `limit` bytes, a 400 when its framing is broken (a bad
    ///   chunk size).
    public static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        let tooLarge = APIProblem(
            .contentTooLarge, code: "body-too-large", title: "The request body is too large",
            detail: "request bodies are limited to \(limit) bytes")
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > drainAllowance(limit: limit) {
            throw tooLarge
        }
        var collected = ByteBuffer()
        var seen = 0
        do {
            for try await chunk in request.body {
                seen += chunk.readableBytes
                if seen > drainAllowance(limit: limit) { throw tooLarge }
                if seen <= limit { collected.writeImmutableBuffer(chunk) }
            }
        } catch let error as HTTPParserError {
            throw APIProblem.badRequest("the request body's framing is broken (\(error))", code: "malformed-body")
        }
        guard seen <= limit else { throw tooLarge }
        return collected
    }
}
