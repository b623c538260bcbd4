import BatonCore
import Foundation

/// A saga's history drawn as a timeline: one row per step, a bar for each attempt of its action
/// and of its compensation, and marks for what happened at one moment (a heartbeat, a signal, a
/// retry scheduled, a skip). Made from the history alone, so that it shows what happened, not what
/// the saga's current state implies.
struct SagaTimeline: Sendable, Hashable {
    enum Outcome: String, Sendable {
        case running, succeeded, failed
        case timedOut = "timed-out"
        case compensated, interrupted
    }

    /// One attempt: from the command sent (or the wait begun, or the child started) to its answer.
    struct Bar: Sendable, Hashable {
        var direction: StepDirection
        var attempt: Int?
        var start: Date
        /// `nil` while it runs.
        var end: Date?
        var outcome: Outcome
        var detail: String
    }

    struct Mark: Sendable, Hashable {
        var kind: HistoryEntry.Kind
        var at: Date
        var detail: String
    }

    struct Row: Sendable, Hashable {
        var step: String
        var bars: [Bar] = []
        var marks: [Mark] = []
    }

    /// Rows in the workflow's step order (steps the history names but the list lacks come last).
    var rows: [Row]
    /// What happened to the saga as a whole (started, cancel requested, suspended, operator actions).
    var sagaMarks: [Mark]
    var start: Date
    var end: Date

    /// - Parameters:
    ///   - steps: The saga's step names, in order.
    ///   - now: Where bars still running end, when the saga has not finished.
    init(steps: [String], history: [HistoryEntry], createdAt: Date, finishedAt: Date?, now: Date) {
        var rows = steps.map { Row(step: $0) }
        var index = Dictionary(steps.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var sagaMarks: [Mark] = []
        func row(_ step: String) -> Int {
            if let position = index[step] { return position }
            rows.append(Row(step: step))
            index[step] = rows.count - 1
            return rows.count - 1
        }
        /// Ends the bar running for this step and direction, if one is.
        func close(_ position: Int, _ direction: StepDirection, at: Date, _ outcome: Outcome, _ detail: String) -> Bool {
            guard let open = rows[position].bars.lastIndex(where: { $0.direction == direction && $0.end == nil }) else { return false }
            rows[position].bars[open].end = at
            rows[position].bars[open].outcome = outcome
            if !detail.isEmpty { rows[position].bars[open].detail += " — " + detail }
            return true
        }
        for entry in history {
            let mark = Mark(kind: entry.kind, at: entry.at, detail: entry.detail)
            guard let step = entry.step else {
                if entry.kind != .ignored { sagaMarks.append(mark) }
                continue
            }
            let position = row(step)
            let direction = entry.direction ?? .action
            switch entry.kind {
            case .commandSent, .signalAwaited, .childRequested:
                // A new attempt ends any the history left open (a redelivered start).
                _ = close(position, direction, at: entry.at, .interrupted, "")
                rows[position].bars.append(
                    Bar(
                        direction: direction, attempt: entry.attempt, start: entry.at, end: nil, outcome: .running,
                        detail: entry.detail))
            case .stepSucceeded:
                if !close(position, direction, at: entry.at, .succeeded, "") { rows[position].marks.append(mark) }
            case .stepCompensated:
                if !close(position, .compensation, at: entry.at, .compensated, "") { rows[position].marks.append(mark) }
            case .stepFailed:
                if !close(position, direction, at: entry.at, .failed, entry.detail) { rows[position].marks.append(mark) }
            case .stepTimedOut:
                if !close(position, direction, at: entry.at, .timedOut, entry.detail) { rows[position].marks.append(mark) }
            case .stepInterrupted:
                if !close(position, direction, at: entry.at, .interrupted, entry.detail) { rows[position].marks.append(mark) }
            case .ignored:
                continue
            default:
                rows[position].marks.append(mark)
            }
        }
        self.rows = rows
        self.sagaMarks = sagaMarks
        self.start = createdAt
        self.end = max(finishedAt ?? now, history.last?.at ?? createdAt, createdAt)
    }

    /// Where a moment sits on the timeline, in percent of its width (0 to 100).
    func position(_ date: Date) -> Double {
        let span = end.timeIntervalSince(start)
        guard span > 0 else { return 0 }
        return min(100, max(0, date.timeIntervalSince(start) / span * 100))
    }

    /// A bar's width in percent, at least enough to be seen and clicked.
    func width(_ bar: Bar) -> Double {
        max(0.6, position(bar.end ?? end) - position(bar.start))
    }
}
