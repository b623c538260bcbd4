"""OpenTelemetry for Python participants: optional, off unless configured.

The worker makes a span per command (``<participant>.<action>``, kind consumer), a child of the
trace the command's ``traceparent`` carries, through the OpenTelemetry API when it is installed
(``pip install opentelemetry-api``); without it, nothing is traced. ``configure_from_environment``
sets up the SDK's OTLP/HTTP exporter from the standard ``OTEL_*`` variables, for a process that has
``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http`` installed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

try:  # the API is optional: without it every span is skipped
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised where opentelemetry is absent
    _trace = None


def requested(environment: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces (an OTLP endpoint, or an exporter other than none)."""
    if environment.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environment.get("OTEL_TRACES_EXPORTER")
    if exporter is not None:
        return exporter.lower() != "none"
    return "OTEL_EXPORTER_OTLP_ENDPOINT" in environment or "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in environment


def configure_from_environment(service_name: str) -> Optional[Any]:
    """Installs a tracer provider exporting over OTLP/HTTP when the OTEL_* variables ask for it.

    Returns the provider (call ``shutdown()`` on it at exit to flush), or None when nothing asks for
    traces. Raises ImportError when they do but the SDK or the exporter is not installed.
    """
    if not requested():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _trace.set_tracer_provider(provider)
    return provider


@contextmanager
def command_span(participant: str, command: Any) -> Iterator[Optional[Any]]:
    """The span of one command, in the trace of its traceparent; yields None without the API."""
    if _trace is None:
        yield None
        return
    context = _propagate.extract(dict(command.headers))
    tracer = _trace.get_tracer("baton_worker")
    with tracer.start_as_current_span(
        f"{participant}.{command.action}",
        context=context,
        kind=SpanKind.CONSUMER,
        attributes={
            "baton.saga.id": command.saga_id,
            "baton.saga.step": command.step,
            "baton.saga.direction": command.direction,
            "baton.saga.attempt": command.attempt,
        },
    ) as span:
        yield span


def record_reply(span: Optional[Any], status: str) -> None:
    if span is None:
        return
    span.set_attribute("baton.reply.status", status)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR))
