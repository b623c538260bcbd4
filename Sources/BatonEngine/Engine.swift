// BatonEngine: the orchestrator's long-lived services, each a swift-service-lifecycle `Service`:
// the outbox relay (PostgreSQL -> JetStream), the reply consumer (JetStream -> state machine -> store)
// and the durable scheduler (due timers -> state machine). They execute the effects that
// `BatonCore.SagaStateMachine` returns. Filled in by the orchestrator issue.
