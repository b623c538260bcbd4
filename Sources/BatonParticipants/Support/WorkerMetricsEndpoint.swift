import BatonHTTP
import BatonWorker
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The workers' own HTTP endpoint: `GET /metrics` (the handler metrics of every worker in the
/// process, Prometheus text) and `GET /healthz`, which the containers' health check calls.
public struct WorkerMetricsEndpoint: Sendable {
    /// Where the workers' metrics are made.
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The metrics to give every ``Worker`` of the process.
    public var workerMetrics: WorkerMetrics { WorkerMetrics(factory: PrometheusMetricsFactory(registry: registry)) }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.middlewares.add(ProblemMiddleware())
        let registry = self.registry
        router.get("/healthz") { _, _ in JSONBodies.response(["status": "ok"]) }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return router
    }

    /// The endpoint as a service listening on `host:port` (port 0: a free one, told to `onListening`).
    public func service(
        host: String, port: Int, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        -> some Service
    {
        Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "baton-workers"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: logger)
    }
}
