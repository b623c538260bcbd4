// swift-tools-version: 6.2
import PackageDescription

// Targets are laid out by responsibility; the folder tree under Sources/ is the architecture:
//   BatonCore       pure saga core: workflow definitions, templating, the saga state machine (no I/O)
//   BatonStore      PostgreSQL store (PostgresNIO): sagas, history, outbox, timers
//   CNATS           system library over the official NATS C client (libnats)
//   BatonTransport  NATS JetStream transport over CNATS
//   BatonEngine     orchestrator services: outbox relay, reply consumer, durable scheduler
//   BatonLogging    JSON log lines for swift-log, and how a process picks its log format
//   BatonTelemetry  OpenTelemetry export (OTLP over HTTP, swift-otel) when OTEL_* asks for it
//   BatonHTTP       what every HTTP service here shares (problem+json errors)
//   BatonAPI        the orchestrator's HTTP API (Hummingbird), and the web console at /ui
//   BatonClient     a client of that API (the `baton` commands, services that start sagas)
//   BatonWorker     worker SDK for participant services
//   BatonParticipants  the demo's participants and the Transactions and Payments services
//   baton           the `baton` executable
//   baton-bench     the benchmark (docs/performance.md)
let package = Package(
    name: "baton",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "baton", targets: ["baton"]),
        .executable(name: "baton-participants", targets: ["baton-participants"]),
        .executable(name: "baton-bench", targets: ["baton-bench"]),
        .library(name: "BatonCore", targets: ["BatonCore"]),
        .library(name: "BatonWorker", targets: ["BatonWorker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
        // OTLP over HTTP only: the gRPC exporter would add grpc-swift to every build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .target(
            name: "BatonCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "BatonStore",
            dependencies: [
                "BatonCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .systemLibrary(
            name: "CNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .target(
            name: "BatonTransport",
            dependencies: [
                "CNATS",
                "BatonCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "BatonEngine",
            dependencies: [
                "BatonCore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                "BatonStore",
                "BatonTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "BatonLogging",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "BatonTelemetry",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "BatonHTTP",
            dependencies: [
                "BatonCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        .target(
            name: "BatonClient",
            dependencies: ["BatonCore"]
        ),
        .target(
            name: "BatonAPI",
            dependencies: [
                "BatonCore",
                .product(name: "Prometheus", package: "swift-prometheus"),
                "BatonHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                "BatonEngine",
                "BatonStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "BatonTransport",
            ],
            // The web console's pages, styles and script, compiled into the binary: it works
            // offline, and a deployment is still one file.
            resources: ConsoleAsset.all.map { .embedInCode("Console/\($0)") }
        ),
        .target(
            name: "BatonWorker",
            dependencies: [
                "BatonClient",
                "BatonCore",
                "BatonStore",
                "BatonTransport",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "BatonParticipants",
            dependencies: [
                "BatonClient",
                "BatonCore",
                "BatonHTTP",
                "BatonTransport",
                .product(name: "Hummingbird", package: "hummingbird"),
                "BatonStore",
                "BatonWorker",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "baton",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                "BatonClient",
                "BatonLogging",
                "BatonTelemetry",
                "BatonCore",
                "BatonStore",
                "BatonTransport",
                "BatonEngine",
                "BatonAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "baton-participants",
            dependencies: [
                "BatonClient",
                "BatonLogging",
                "BatonTelemetry",
                "BatonParticipants",
                .product(name: "Hummingbird", package: "hummingbird"),
                "BatonStore",
                "BatonTransport",
                "BatonWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "baton-bench",
            dependencies: [
                "BatonClient",
                "BatonCore",
                "BatonEngine",
                "BatonStore",
                "BatonTransport",
                "BatonWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "BatonCoreTests",
            dependencies: [
                "BatonCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            // Definitions as earlier releases shipped them, read by path.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "BatonTransportTests",
            dependencies: ["BatonCore", "BatonLogging", "BatonTransport"]
        ),
        .testTarget(
            name: "BatonCommandTests",
            dependencies: ["baton"]
        ),
        .testTarget(
            name: "BatonIntegrationTests",
            dependencies: [
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                "BatonAPI",
                "BatonCore",
                "BatonEngine",
                "BatonParticipants",
                "BatonStore",
                "BatonTransport",
                "BatonWorker",
                "CNATS",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// The console's files (Sources/BatonAPI/Console/), each embedded as `PackageResources.<name>`.
enum ConsoleAsset {
    static let all =
        ["Assets/console.css", "Assets/console.js"]
        + [
            "layout", "login", "problem", "overview", "sagas", "saga-rows", "saga", "workflows", "workflow", "flow-step",
            "dead-letters", "status-badge", "time",
        ]
        .map { "Templates/\($0).mustache" }
}
