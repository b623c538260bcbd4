import Foundation
import Logging
import OTel
import ServiceLifecycle

/// OpenTelemetry for a Baton process: its spans exported over OTLP (HTTP) with swift-otel, when,
/// and only when, the standard `OTEL_*` variables ask for it (`docs/operations.md`, Traces).
///
/// Logs and metrics stay Baton's own (JSON lines, Prometheus): only traces are exported, so the
/// OTel variables for logs and metrics are ignored rather than bootstrap a second logging or
/// metrics system.
public enum Telemetry {
    /// Whether `environment` asks for traces: an OTLP endpoint is set (for all signals or for
    /// traces), or `OTEL_TRACES_EXPORTER` names one, and the SDK is not disabled.
    public static func isRequested(by environment: [String: String]) -> Bool {
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        if let exporter = environment["OTEL_TRACES_EXPORTER"]?.lowercased() { return exporter != "none" }
        return environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil
    }

    /// Bootstraps the tracer for `serviceName` (`OTEL_SERVICE_NAME` wins) when asked for; call it
    /// once, before the first span. Run the returned service in the process's service group: it
    /// exports in batches and flushes what is left on graceful shutdown.
    /// - Returns: `nil` when nothing asks for traces (then every span is a no-op).
    /// - Throws: A configuration the OTel variables describe but swift-otel cannot use.
    public static func bootstrap(
        serviceName: String, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) throws -> (any Service)? {
        guard isRequested(by: environment) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.diagnosticLogger = .custom(logger)
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        let tracesOnly = environment.filter { !$0.key.hasPrefix("OTEL_LOGS_") && !$0.key.hasPrefix("OTEL_METRICS_") }
        let service = try OTel.bootstrap(configuration: configuration, environment: tracesOnly)
        logger.info(
            "exporting traces over OTLP",
            metadata: [
                "otel.endpoint":
                    "\(environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "default")",
                "otel.service": "\(environment["OTEL_SERVICE_NAME"] ?? serviceName)",
            ])
        return service
    }
}
