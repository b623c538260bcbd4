"""Baton's worker SDK for Python: participants on nats-py and asyncio, with the idempotency barrier
on PostgreSQL (psycopg 3). The protocol is docs/protocol.md; the guide is sdk/python/README.md."""

from .barrier import BusinessFailure, IdempotencyBarrier, RetryLater
from .protocol import (
    PROTOCOL,
    Command,
    Failed,
    InProgress,
    ProtocolViolation,
    Retry,
    Succeeded,
    parse_command,
    parse_duration,
    parse_strict_json,
)
from . import tracing
from .worker import STREAMS, DeferredReply, Handlers, ReplyDeferred, Worker

__version__ = "0.3.0"

__all__ = [
    "PROTOCOL",
    "STREAMS",
    "BusinessFailure",
    "Command",
    "DeferredReply",
    "Failed",
    "Handlers",
    "IdempotencyBarrier",
    "InProgress",
    "ProtocolViolation",
    "ReplyDeferred",
    "Retry",
    "RetryLater",
    "Succeeded",
    "Worker",
    "parse_command",
    "parse_duration",
    "parse_strict_json",
    "tracing",
]
