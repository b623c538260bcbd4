import BatonCore
import BatonTransport
import Logging

/// What a handler knows about the command it runs.
public struct HandlerContext: Sendable {
    public let command: CommandMessage
    /// Carries `saga.id`, `saga.step`, `saga.direction`, `saga.attempt` and `correlation.id`.
    public var logger: Logger

    public init(command: CommandMessage, logger: Logger) {
        self.command = command
        self.logger = logger
    }

    public var payload: JSONValue { command.payload }
    /// The same for every attempt of this step and direction: apply the effect once per key.
    public var idempotencyKey: String { command.idempotencyKey }
}

/// A business failure with no effect (insufficient funds, card declined): replied as `failed`, and
/// before the pivot the saga compensates.
public struct BusinessFailure: Error, Sendable, Hashable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// A transient failure with no effect, with an earliest time to try again: replied as `retry`.
/// (Any other error thrown by a handler is replied as `retry` without a delay.)
public struct RetryLater: Error, Sendable, Hashable {
    public var after: SagaDuration?
    public var message: String

    public init(after: SagaDuration? = nil, message: String) {
        self.after = after
        self.message = message
    }
}

/// The handlers of one participant, by action name and direction.
public struct WorkerHandlers: Sendable {
    public typealias Handler = @Sendable (HandlerContext) async throws -> ReplyStatus

    struct Key: Hashable {
        var action: String
        var direction: StepDirection
    }

    private(set) var handlers: [Key: Handler] = [:]

    public init() {}

    /// Handles the action `action`: return the output; throw ``BusinessFailure`` for `failed`,
    /// ``RetryLater`` or anything else for `retry`, and ``ReplyDeferred`` to answer later.
    public mutating func action(_ action: String, _ body: @escaping @Sendable (HandlerContext) async throws -> JSONValue) {
        handlers[Key(action: action, direction: .action)] = Self.replying(body)
    }

    /// Handles the compensation `action` (the name in the workflow's `compensate.action`).
    public mutating func compensation(_ action: String, _ body: @escaping @Sendable (HandlerContext) async throws -> JSONValue) {
        handlers[Key(action: action, direction: .compensation)] = Self.replying(body)
    }

    /// Registers a handler that decides the reply itself (the idempotency barrier's handlers do).
    public mutating func register(_ action: String, direction: StepDirection, _ handler: @escaping Handler) {
        handlers[Key(action: action, direction: direction)] = handler
    }

    /// The same handlers, each run through `interceptor`, which gets the context and the handler
    /// and decides the reply: for metrics, logging, or fault injection in demos and tests.
    public func intercepting(
        _ interceptor: @escaping @Sendable (HandlerContext, Handler) async throws -> ReplyStatus
    ) -> WorkerHandlers {
        var intercepted = WorkerHandlers()
        for (key, handler) in handlers { intercepted.handlers[key] = { context in try await interceptor(context, handler) } }
        return intercepted
    }

    func handler(action: String, direction: StepDirection) -> Handler? {
        handlers[Key(action: action, direction: direction)]
    }

    /// Maps a handler's result and errors to a reply.
    public static func replying(_ body: @escaping @Sendable (HandlerContext) async throws -> JSONValue) -> Handler {
        { context in
            do {
                return .succeeded(output: try await body(context))
            } catch let deferred as ReplyDeferred {
                throw deferred
            } catch let failure as BusinessFailure {
                return .failed(code: failure.code, message: failure.message)
            } catch let retry as RetryLater {
                return .retry(after: retry.after, message: retry.message)
            } catch {
                return .retry(after: nil, message: String(describing: error))
            }
        }
    }
}
