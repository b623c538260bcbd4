"""Baton's wire protocol, version 1 (docs/protocol.md): commands in, replies out, dead letters.

Pure functions and types: nothing here touches the network, so the rules can be tested alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional

PROTOCOL = "1"
COMMAND_PREFIX = "baton.cmd."
REPLY_PREFIX = "baton.reply."
DEAD_LETTER_PREFIX = "baton.dlq."
MAXIMUM_DEPTH = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAXIMUM_DURATION = 365 * 86400.0


class ProtocolViolation(Exception):
    """A message that does not follow the protocol: it goes to the dead letters with this reason."""


@dataclass(frozen=True)
class Command:
    """One attempt of a step's action or compensation, as delivered."""

    subject: str
    participant: str
    action: str
    saga_id: str
    step: str
    direction: str  # "action" or "compensation"
    attempt: int
    idempotency_key: str
    deadline: datetime
    payload: Any
    workflow: Optional[str] = None
    correlation_id: Optional[str] = None
    traceparent: Optional[str] = None
    # The step's timeout in seconds (Baton-Timeout), when the orchestrator sent it: after an
    # in_progress reply the attempt's deadline is the time of that reply plus this.
    timeout: Optional[float] = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def leg(self) -> str:
        """The leg an action and its compensation share: ``<saga>/<step>``."""
        return f"{self.saga_id}/{self.step}"

    @property
    def message_id(self) -> str:
        """``<saga>.<step>.<direction>.<attempt>``: the command's Nats-Msg-Id."""
        return f"{self.saga_id}.{self.step}.{self.direction}.{self.attempt}"

    @property
    def reply_subject(self) -> str:
        return f"{REPLY_PREFIX}{self.participant}.{self.action}"


# Replies ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Succeeded:
    output: Any = None


@dataclass(frozen=True)
class Failed:
    code: str
    message: str = ""


@dataclass(frozen=True)
class Retry:
    message: str = ""
    retry_after: Optional[float] = None  # seconds


@dataclass(frozen=True)
class InProgress:
    pass


Reply = Any  # Succeeded | Failed | Retry | InProgress


def status_name(reply: Reply) -> str:
    if isinstance(reply, Succeeded):
        return "succeeded"
    if isinstance(reply, Failed):
        return "failed"
    if isinstance(reply, Retry):
        return "retry"
    if isinstance(reply, InProgress):
        return "in_progress"
    raise TypeError(f"not a reply: {reply!r}")


def reply_body(reply: Reply) -> Dict[str, Any]:
    """The reply's JSON body."""
    status = status_name(reply)
    body: Dict[str, Any] = {"status": status}
    if isinstance(reply, Succeeded):
        body["output"] = reply.output
    elif isinstance(reply, Failed):
        body["error"] = {"code": reply.code, "message": reply.message}
    elif isinstance(reply, Retry):
        body["message"] = reply.message
        if reply.retry_after is not None:
            body["retry_after"] = format_duration(reply.retry_after)
    return body


def reply_from_body(body: Any) -> Reply:
    """The reply a recorded body holds (the barrier stores bodies)."""
    status = body.get("status") if isinstance(body, dict) else None
    if status == "succeeded":
        return Succeeded(body.get("output"))
    if status == "failed":
        error = body.get("error") or {}
        return Failed(str(error.get("code", "")), str(error.get("message", "")))
    if status == "retry":
        return Retry(str(body.get("message", "")), parse_duration(body.get("retry_after")))
    if status == "in_progress":
        return InProgress()
    raise ValueError(f"not a reply body: {body!r}")


def reply_headers(command: Command, reply: Reply, heartbeat: Optional[int] = None) -> Dict[str, str]:
    """The reply's headers: the attempt it answers, copied from the command.

    ``heartbeat`` makes each in_progress reply's message id unique (docs/protocol.md: any number
    not used before for the attempt; the SDKs use the time in milliseconds), so that JetStream's
    duplicate window never drops one.
    """
    status = status_name(reply)
    suffix = f"{status}.{heartbeat if heartbeat is not None else 0}" if status == "in_progress" else status
    headers = {
        "Baton-Protocol": PROTOCOL,
        "Nats-Msg-Id": f"{command.message_id}.{suffix}",
        "Baton-Saga-Id": command.saga_id,
        "Baton-Step": command.step,
        "Baton-Direction": command.direction,
        "Baton-Attempt": str(command.attempt),
    }
    if command.correlation_id:
        headers["Baton-Correlation-Id"] = command.correlation_id
    if command.traceparent:
        headers["traceparent"] = command.traceparent
    return headers


def encode_reply(reply: Reply) -> bytes:
    return json.dumps(reply_body(reply), separators=(",", ":"), ensure_ascii=False).encode()


# Durations -------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``250ms``, ``5s``: whole milliseconds, as retry_after and Baton-Timeout are written."""
    milliseconds = max(0, int(round(seconds * 1000)))
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def parse_duration(text: Any) -> Optional[float]:
    """Seconds in ``500ms``, ``30s``, ``1h30m``, ``2d`` (docs/workflows.md), or None when the text is
    not a duration or is longer than 365 days."""
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    total = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    return total if total <= MAXIMUM_DURATION else None


# Reading a command -----------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list) -> dict:
    seen: Dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key '{key}' appears twice in one object")
        seen[key] = value
    return seen


def _check(value: Any, depth: int) -> None:
    if depth > MAXIMUM_DEPTH:
        raise ValueError(f"nesting deeper than {MAXIMUM_DEPTH} levels")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"the integer {value} does not fit 64 bits")
    elif isinstance(value, dict):
        for item in value.values():
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def parse_strict_json(data: bytes) -> Any:
    """JSON as the protocol reads it: UTF-8, no duplicate keys, integers within 64 bits, at most 64
    levels deep, no NaN or Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolViolation(f"the body is not UTF-8: {error}") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
        _check(value, 1)
    except RecursionError:
        raise ProtocolViolation(f"the body is not strict JSON: nesting deeper than {MAXIMUM_DEPTH} levels") from None
    except ValueError as error:
        raise ProtocolViolation(f"the body is not strict JSON: {error}") from None
    return value


def _time(text: str) -> Optional[datetime]:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def parse_command(subject: str, headers: Optional[Mapping[str, str]], data: bytes) -> Command:
    """Reads a delivered command, checking it in the order docs/protocol.md lists the rules: the
    first problem is the reason given.

    Raises ProtocolViolation: the command goes to the dead letters.
    """
    headers = dict(headers or {})
    version = headers.get("Baton-Protocol")
    if version != PROTOCOL:
        raise ProtocolViolation(f"unsupported protocol version {version}" if version else "header Baton-Protocol is missing")
    tokens = subject.split(".")
    if len(tokens) != 4 or f"{tokens[0]}.{tokens[1]}." != COMMAND_PREFIX or not all(_NAME.match(t) for t in tokens[2:]):
        raise ProtocolViolation(f"the subject '{subject}' is not baton.cmd.<participant>.<action>")

    def required(name: str) -> str:
        value = headers.get(name)
        if not value:
            raise ProtocolViolation(f"header {name} is missing")
        return value

    saga_id = required("Baton-Saga-Id")
    step = required("Baton-Step")
    direction = required("Baton-Direction")
    if direction not in ("action", "compensation"):
        raise ProtocolViolation(f"header Baton-Direction must be action or compensation, got '{direction}'")
    attempt_text = required("Baton-Attempt")
    if not attempt_text.isdigit() or int(attempt_text) < 1 or len(attempt_text) > 9:
        raise ProtocolViolation(f"header Baton-Attempt must be a positive integer, got '{attempt_text}'")
    key = required("Baton-Idempotency-Key")
    deadline_text = required("Baton-Deadline")
    deadline = _time(deadline_text)
    if deadline is None:
        raise ProtocolViolation(f"header Baton-Deadline must be an RFC 3339 time, got '{deadline_text}'")
    payload = parse_strict_json(data)
    timeout = parse_duration(headers.get("Baton-Timeout"))
    return Command(
        subject=subject,
        participant=tokens[2],
        action=tokens[3],
        saga_id=saga_id,
        step=step,
        direction=direction,
        attempt=int(attempt_text),
        idempotency_key=key,
        deadline=deadline.astimezone(timezone.utc),
        payload=payload,
        workflow=headers.get("Baton-Workflow") or None,
        correlation_id=headers.get("Baton-Correlation-Id") or None,
        traceparent=headers.get("traceparent") or None,
        timeout=timeout,
        headers=headers,
    )


def dead_letter(subject: str, headers: Optional[Mapping[str, str]], reason: str, source: str) -> tuple:
    """The dead-letter copy of a message: its subject and headers (the body is the original's).

    Every original header is kept except Nats-Msg-Id, which becomes ``dlq.<original>`` so that a
    dead letter is never dropped as a duplicate of the message it copies.
    """
    copied = {name: value for name, value in (headers or {}).items() if not name.startswith("Baton-Dead-Letter-")}
    original_id = copied.pop("Nats-Msg-Id", None)
    copied["Baton-Dead-Letter-Reason"] = reason
    copied["Baton-Dead-Letter-Subject"] = subject
    copied["Baton-Dead-Letter-Source"] = source
    if original_id:
        copied["Nats-Msg-Id"] = f"dlq.{original_id}"
    suffix = subject[len("baton.") :] if subject.startswith("baton.") else f"other.{subject}"
    return DEAD_LETTER_PREFIX + suffix, copied
