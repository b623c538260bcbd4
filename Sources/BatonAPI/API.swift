// BatonAPI: the HTTP API (Hummingbird): sagas, workflows, health and readiness, problem+json errors.
// The routes and their contract live in docs/openapi.yaml. Filled in by the orchestrator issue.
