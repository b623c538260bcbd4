import BatonCore
import Logging

/// Logs a committed transition, one line per history entry, at a level that matches what an
/// operator should do about it: the steps of a normal saga are debug and its start and end info;
/// a failed or timed-out attempt and every compensation are notice; a suspended saga, which waits
/// for a person, is error.
///
/// Every line carries `saga.id`, `workflow`, `correlation.id` and `trace.id`, and the step's
/// `saga.step`, `saga.direction` and `saga.attempt` when the entry has them.
struct TransitionLog: Sendable {
    let logger: Logger

    func record(_ transition: SagaTransition, of saga: SagaInstance) {
        // Most transitions log only debug lines: at the usual info level, build nothing for them.
        let levels = transition.effects.compactMap { effect -> Logger.Level? in
            if case .recordHistory(let entry) = effect { Self.level(of: entry.kind) } else { nil }
        }
        guard let highest = levels.max(), highest >= logger.logLevel else { return }
        var metadata: Logger.Metadata = ["saga.id": "\(saga.id)", "workflow": "\(saga.workflow)"]
        if let correlationID = saga.correlationID { metadata["correlation.id"] = "\(correlationID)" }
        if let trace = saga.traceparent.flatMap(SagaTrace.ids(of:)) { metadata["trace.id"] = "\(trace.traceID)" }
        for case .recordHistory(let entry) in transition.effects where Self.level(of: entry.kind) >= logger.logLevel {
            var line = metadata
            if let step = entry.step { line["saga.step"] = "\(step)" }
            if let direction = entry.direction { line["saga.direction"] = "\(direction.rawValue)" }
            if let attempt = entry.attempt { line["saga.attempt"] = "\(attempt)" }
            line["saga.status"] = "\(entry.statusAfter.rawValue)"
            logger.log(level: Self.level(of: entry.kind), "\(entry.kind.rawValue): \(entry.detail)", metadata: line)
        }
    }

    static func level(of kind: HistoryEntry.Kind) -> Logger.Level {
        switch kind {
        case .commandSent, .stepSucceeded, .heartbeat, .retryScheduled, .stepSkipped, .parallelStarted, .parallelJoined, .ignored: .debug
        case .sagaStarted, .sagaCompleted, .cancelRequested, .operatorAction, .failureHandlersStarted, .signalAwaited, .signalReceived,
            .childRequested:
            .info
        case .stepFailed, .stepTimedOut, .compensationStarted, .stepCompensated, .sagaFailed, .sagaCancelled, .deadlineReached,
            .cancelRefused,
            .operatorActionRefused, .failureHandlerFailed, .signalRefused, .stepInterrupted:
            .notice
        case .sagaSuspended: .error
        }
    }
}
