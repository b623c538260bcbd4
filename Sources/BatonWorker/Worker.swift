// BatonWorker: the worker SDK participants use to consume commands from JetStream, run handlers
// behind an idempotency barrier in their own PostgreSQL, and publish typed replies.
// Filled in by the transport issue.
