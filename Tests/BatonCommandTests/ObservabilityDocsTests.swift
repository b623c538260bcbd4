import Foundation
import Testing

/// The Grafana dashboard and the alert rules query only metrics that exist and are documented: a
/// renamed metric would otherwise leave an empty panel or an alert that never fires.
@Suite("Observability files")
struct ObservabilityDocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appending(path: "../..")

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appending(path: path), encoding: .utf8)
    }

    /// `baton_…` metric names in `text`, without the `_bucket`, `_count` and `_sum` a histogram adds.
    static func metricNames(in text: String) -> Set<String> {
        let names = text.matches(of: /baton_[a-z_]+/).map { String($0.output) }
        return Set(
            names.map { name in
                for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
                return name
            })
    }

    @Test("every metric the dashboard and the alerts query is in docs/operations.md's metrics table")
    func queriedMetricsAreDocumented() throws {
        let dashboard = try Self.text("docs/observability/grafana-dashboard.json")
        let alerts = try Self.text("docs/observability/alerts.yml")
        let documented = Self.metricNames(in: try Self.text("docs/operations.md"))
        let queried = Self.metricNames(in: dashboard).union(Self.metricNames(in: alerts))
        #expect(queried.count >= 20)
        #expect(queried.subtracting(documented).isEmpty, "not documented: \(queried.subtracting(documented).sorted())")
        let object = try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any]
        #expect((object?["panels"] as? [Any])?.isEmpty == false)
    }

    @Test("every metric the code records is in the dashboard or the alerts")
    func recordedMetricsAreShown() throws {
        let sources = ["Sources/BatonEngine/Support/EngineMetrics.swift", "Sources/BatonWorker/WorkerMetrics.swift"]
        let recorded = try sources.reduce(into: Set<String>()) { $0.formUnion(Self.metricNames(in: try Self.text($1))) }
        let shown = Self.metricNames(in: try Self.text("docs/observability/grafana-dashboard.json"))
            .union(Self.metricNames(in: try Self.text("docs/observability/alerts.yml")))
        #expect(recorded.count >= 15)
        #expect(recorded.subtracting(shown).isEmpty, "recorded but shown nowhere: \(recorded.subtracting(shown).sorted())")
    }
}
