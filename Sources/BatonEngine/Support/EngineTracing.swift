import BatonCore
import Foundation
import Tracing

/// The orchestrator's spans (`docs/operations.md`, Traces): the submission of a saga, and each
/// committed transition (a reply applied, a timer fired, a cancel, a signal, an operator's
/// action), in the trace of the saga's `traceparent`, for whichever tracer the process
/// bootstrapped. With none (the default), every call here is a no-op that costs next to nothing.
enum EngineTracing {
    /// The context a saga's `traceparent` carries, to parent a span on.
    static func context(of traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let traceparent else { return context }
        InstrumentationSystem.instrument.extract(["traceparent": traceparent], into: &context, using: TraceHeaders())
        return context
    }

    /// The `traceparent` of `context` (a span's), or `nil` when no tracer is bootstrapped.
    static func traceparent(of context: ServiceContext) -> String? {
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: TraceHeaders())
        return headers["traceparent"]
    }

    /// The span name of an event: `saga.<name>`.
    static func name(of event: SagaEvent) -> String {
        switch event {
        case .start: "start"
        case .reply: "reply"
        case .timerFired: "timer"
        case .cancel: "cancel"
        case .operatorAction: "operator"
        case .signal: "signal"
        case .child: "child"
        case .parentCompensates: "parent_compensates"
        }
    }

    /// A span for a committed transition of `saga`, from `start` to now.
    static func transition(_ transition: SagaTransition, of saga: SagaInstance, event: SagaEvent, since start: Date) {
        let span = InstrumentationSystem.tracer.startSpan(
            "saga.\(name(of: event))", context: context(of: saga.traceparent), ofKind: .internal, at: DateInstant(start))
        defer { span.end() }
        // Without a tracer (the default) the span records nothing: build no attributes for it.
        guard span.isRecording else { return }
        span.attributes["baton.saga.id"] = saga.id
        span.attributes["baton.workflow"] = saga.workflow
        span.attributes["baton.saga.status"] = saga.status.rawValue
        span.attributes["baton.event"] = event.summary
        if let step = transition.history.last?.step { span.attributes["baton.saga.step"] = step }
        span.attributes["baton.history"] = transition.history.map(\.kind.rawValue).joined(separator: ",")
        if case .rejected(let reason) = transition.outcome { span.attributes["baton.rejected"] = reason }
    }
}

extension EngineTracing {
    /// A span for one command's publication (`baton.publish`, kind producer), from `start` (the
    /// batch's) to JetStream's answer, failed when JetStream refused it or did not answer.
    static func published(_ command: StepCommand, since start: Date, failure: (any Error)?) {
        let span = InstrumentationSystem.tracer.startSpan(
            "baton.publish", context: context(of: command.traceparent), ofKind: .producer, at: DateInstant(start))
        defer { span.end() }
        guard span.isRecording else { return }
        span.attributes["messaging.system"] = "nats"
        span.attributes["messaging.destination.name"] = command.subject
        span.attributes["messaging.message.id"] = command.messageID
        span.attributes["baton.saga.id"] = command.sagaID
        span.attributes["baton.saga.step"] = command.step
        span.attributes["baton.saga.direction"] = command.direction.rawValue
        span.attributes["baton.saga.attempt"] = command.attempt
        if let failure {
            span.recordError(failure)
            span.setStatus(SpanStatus(code: .error))
        }
    }
}

/// A `Date` as the tracer's clock: transitions start where their transaction began.
struct DateInstant: TracerInstant {
    var nanosecondsSinceEpoch: UInt64

    init(_ date: Date) { nanosecondsSinceEpoch = UInt64(max(0, date.timeIntervalSince1970) * 1_000_000_000) }

    static func < (lhs: DateInstant, rhs: DateInstant) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}

/// Reads and writes `traceparent` (and `tracestate`) in a plain dictionary.
struct TraceHeaders: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
