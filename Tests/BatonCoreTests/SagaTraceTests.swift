import BatonCore
import Testing

@Suite("W3C trace context of a saga")
struct SagaTraceTests {
    @Test("a valid caller traceparent is kept as it came")
    func keepsCaller() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(SagaTrace.start(from: header) == header)
        #expect(SagaTrace.ids(of: header)?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(SagaTrace.ids(of: header)?.spanID == "00f067aa0ba902b7")
    }

    @Test(
        "a missing or invalid traceparent starts a new sampled trace",
        arguments: [
            nil, "", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ])
    func startsNew(caller: String?) throws {
        let started = SagaTrace.start(from: caller)
        let ids = try #require(SagaTrace.ids(of: started))
        #expect(started != caller)
        #expect(started.hasPrefix("00-") && started.hasSuffix("-01"))
        #expect(ids.traceID.count == 32 && ids.spanID.count == 16)
        #expect(SagaTrace.start(from: nil) != started, "each new trace has its own id")
    }
}
