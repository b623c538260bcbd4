import BatonCore
import Foundation
import Hummingbird

/// Reading JSON request bodies and writing JSON responses, the same way in every service.
public enum JSONBodies {
    /// `value` as an `application/json` response.
    public static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.canonicalJSON)))
    }

    /// The request's body read as JSON, or `nil` when it is empty.
    /// - Throws: an ``APIProblem``: 413 over `limit` bytes, 400 when the body is not JSON.
    public static func read(_ request: Request, limit: Int) async throws -> JSONValue? {
        let buffer = try await collect(request, limit: limit)
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
        } catch {
            throw APIProblem.badRequest("the body is not valid JSON: \(describe(error))", code: "malformed-json")
        }
    }

    /// The request's whole body.
    /// - Throws: a 413 ``APIProblem`` over `limit` bytes.
    public static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIProblem(
                .contentTooLarge, code: "body-too-large", title: "The request body is too large",
                detail: "request bodies are limited to \(limit) bytes")
        }
    }

    /// A decoding error as the one line a client can act on.
    public static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription
        }
        return "\(error)"
    }
}
