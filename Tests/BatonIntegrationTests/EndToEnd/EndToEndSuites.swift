import Testing

/// The end-to-end suites, one after another. Each runs a whole system (an engine, a private
/// nats-server, workers, sometimes processes) with step timeouts of a few seconds; several of
/// them at once on a 2-core machine starve each other into timeouts the tests did not intend.
/// Everything else still runs in parallel beside them.
@Suite("End to end", .serialized)
enum EndToEndSuites {}
