"""A Baton participant's worker on nats-py and asyncio: what the Swift SDK's ``Worker`` does.

It binds to the participant's durable consumer (creating it, and Baton's streams, only when they
are missing), pulls commands, runs each handler with heartbeats, publishes the reply, waits for
JetStream's ack of it, then acknowledges the command. Commands it cannot read go to the dead
letters with the reason. See docs/protocol.md and sdk/python/README.md.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

import nats
from nats.errors import TimeoutError as NATSTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from . import tracing
from .barrier import BusinessFailure, IdempotencyBarrier, RetryLater
from .protocol import (
    Command,
    Failed,
    InProgress,
    ProtocolViolation,
    Reply,
    Retry,
    Succeeded,
    dead_letter,
    encode_reply,
    parse_command,
    reply_headers,
    status_name,
)

logger = logging.getLogger("baton_worker")

# Baton's streams (docs/protocol.md, "Streams"): created by a worker only when missing.
STREAMS = [
    StreamConfig(
        name="BATON_COMMANDS", subjects=["baton.cmd.>"], retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE, duplicate_window=120, num_replicas=1,
    ),
    StreamConfig(
        name="BATON_REPLIES", subjects=["baton.reply.>"], retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE, duplicate_window=120, num_replicas=1,
    ),
    StreamConfig(
        name="BATON_DLQ", subjects=["baton.dlq.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=120, max_age=14 * 86400, num_replicas=1,
    ),
]


class ReplyDeferred(Exception):
    """Raised by a handler that kept the command (``DeferredReply.of(command)``) and will answer it
    later: the worker replies ``in_progress`` (the step's timeout restarts) and acks the command."""


@dataclass(frozen=True)
class DeferredReply:
    """A command whose answer comes later, in a form to store (``to_json``) and to answer from any
    process: ``await deferred.answer(Succeeded(...), js)``."""

    subject: str
    headers: Dict[str, str]
    payload: str

    @staticmethod
    def of(command: Command) -> "DeferredReply":
        return DeferredReply(command.subject, dict(command.headers), json.dumps(command.payload))

    def to_json(self) -> str:
        return json.dumps({"subject": self.subject, "headers": self.headers, "payload": self.payload})

    @staticmethod
    def from_json(text: str) -> "DeferredReply":
        value = json.loads(text)
        return DeferredReply(value["subject"], dict(value["headers"]), value["payload"])

    def command(self) -> Command:
        return parse_command(self.subject, self.headers, self.payload.encode())

    async def answer(self, reply: Reply, js: Any) -> None:
        """Publishes the reply, waiting for JetStream's ack. Twice is harmless: the message id comes
        from the command and the status, so JetStream keeps one and Baton ignores a repeat."""
        command = self.command()
        await js.publish(command.reply_subject, encode_reply(reply), headers=reply_headers(command, reply))


HandlerFunction = Callable[..., Awaitable[Any]]


class Handlers:
    """Handlers by action and direction. A compensation is registered under the name of the action
    its command arrives on (the step's compensation action, ``refund``), with direction
    compensation.

    A handler is ``async def handler(command) -> output``, or with a barrier
    ``async def handler(command, connection) -> output`` (run in the barrier's transaction). It
    raises ``BusinessFailure`` for ``failed``, ``RetryLater`` for ``retry``, ``ReplyDeferred`` to
    answer later; any other exception answers ``retry`` with its message.
    """

    def __init__(self) -> None:
        self._handlers: Dict[Tuple[str, str], Tuple[HandlerFunction, Optional[IdempotencyBarrier]]] = {}

    def register(self, action: str, direction: str, handler: HandlerFunction, barrier: Optional[IdempotencyBarrier] = None):
        if direction not in ("action", "compensation"):
            raise ValueError(f"direction must be action or compensation, got '{direction}'")
        self._handlers[(action, direction)] = (handler, barrier)
        return handler

    def action(self, name: str, barrier: Optional[IdempotencyBarrier] = None):
        return lambda handler: self.register(name, "action", handler, barrier)

    def compensation(self, name: str, barrier: Optional[IdempotencyBarrier] = None):
        return lambda handler: self.register(name, "compensation", handler, barrier)

    def find(self, action: str, direction: str):
        return self._handlers.get((action, direction))


class Worker:
    """Serves one participant until ``stop()``.

    ``concurrency`` commands at once; ``ack_wait`` the consumer's AckWait when the worker creates
    it (an existing consumer keeps its own); ``heartbeats`` sends ``+WPI`` and ``in_progress`` at
    half the time left while a handler runs; ``fetch_timeout`` is how long one pull waits;
    ``before_handler(command)`` is awaited before each handler, outside the barrier's transaction
    (fault injection, rate limits).
    """

    def __init__(
        self,
        participant: str,
        nats_url: str,
        handlers: Handlers,
        concurrency: int = 16,
        ack_wait: float = 30.0,
        heartbeats: bool = True,
        fetch_timeout: float = 5.0,
        creates_streams: bool = True,
        connect_options: Optional[Dict[str, Any]] = None,
        before_handler: Optional[Callable[[Command], Awaitable[None]]] = None,
    ):
        self.participant = participant
        self.nats_url = nats_url
        self.handlers = handlers
        self.concurrency = max(1, concurrency)
        self.ack_wait = ack_wait
        self.heartbeats = heartbeats
        self.fetch_timeout = fetch_timeout
        self.creates_streams = creates_streams
        self.connect_options = connect_options or {}
        self.before_handler = before_handler
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self.nc: Any = None
        self.js: Any = None

    def stop(self) -> None:
        """Stops pulling; commands being handled finish and are answered first."""
        self._stop.set()

    async def wait_until_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        self.nc = await nats.connect(
            servers=self.nats_url.split(","),
            name=f"baton-worker-{self.participant}",
            # Its own inboxes, so that NATS permissions can keep other participants out of them.
            inbox_prefix=f"_INBOX_{self.participant}".encode(),
            max_reconnect_attempts=-1,
            **self.connect_options,
        )
        try:
            self.js = self.nc.jetstream()
            await self._ensure_streams_and_consumer()
            subscription = await self.js.pull_subscribe_bind(durable=self.participant, stream="BATON_COMMANDS")
            self._ready.set()
            logger.info("worker ready", extra={"participant": self.participant})
            slots = asyncio.Semaphore(self.concurrency)
            running: set = set()
            while not self._stop.is_set():
                free = self.concurrency - len(running)
                if free == 0:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                pull = asyncio.ensure_future(subscription.fetch(batch=free, timeout=self.fetch_timeout))
                stopping = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait([pull, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not pull.done():
                    # Stopping: a pull that has delivered nothing yet is abandoned; one that raced
                    # the stop and got messages is handled below like any other.
                    pull.cancel()
                    await asyncio.gather(pull, return_exceptions=True)
                    break
                try:
                    messages = pull.result()
                except (NATSTimeoutError, asyncio.TimeoutError):
                    # An empty pull ends in a timeout: nats-py raises its own TimeoutError or
                    # asyncio's, depending on where the wait ended. Both mean "nothing yet".
                    continue
                except Exception as error:  # the connection is reconnecting: pull again soon
                    if self._stop.is_set():
                        break
                    logger.warning("pull failed; pulling again", extra={"error": str(error)})
                    await asyncio.sleep(0.5)
                    continue
                for message in messages:
                    await slots.acquire()
                    task = asyncio.create_task(self._handle(message))
                    running.add(task)
                    task.add_done_callback(lambda done: (running.discard(done), slots.release()))
            if running:
                await asyncio.wait(running)
        finally:
            # Every command taken was answered (or will be redelivered after AckWait): nothing left
            # to drain.
            await self.nc.close()

    async def _ensure_streams_and_consumer(self) -> None:
        if self.creates_streams:
            for stream in STREAMS:
                try:
                    await self.js.stream_info(stream.name)
                except NotFoundError:
                    try:
                        await self.js.add_stream(stream)
                    except Exception as error:  # another process made it meanwhile
                        logger.info("stream not created", extra={"stream": stream.name, "error": str(error)})
        try:
            await self.js.consumer_info("BATON_COMMANDS", self.participant)
        except NotFoundError:
            # Baton creates it for every participant its workflows name; this is for a participant
            # that starts first. Explicit acks, redelivered after AckWait, never dropped.
            await self.js.add_consumer(
                "BATON_COMMANDS",
                ConsumerConfig(
                    durable_name=self.participant,
                    filter_subject=f"baton.cmd.{self.participant}.>",
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    max_deliver=-1,
                    max_ack_pending=1000,
                ),
            )

    async def _handle(self, message: Any) -> None:
        try:
            command = parse_command(message.subject, message.headers, message.data)
        except ProtocolViolation as violation:
            await self._dead_letter(message, str(violation))
            return
        if command.participant != self.participant:
            await self._dead_letter(message, f"a command for participant {command.participant}, not {self.participant}")
            return
        found = self.handlers.find(command.action, command.direction)
        if found is None:
            await self._dead_letter(message, f"no {command.direction} handler for '{command.action}'")
            return
        handler, barrier = found
        # A span per command, in the trace its traceparent carries (when OpenTelemetry is installed).
        with tracing.command_span(self.participant, command) as span:
            heartbeat = asyncio.create_task(self._heartbeat(command, message)) if self.heartbeats else None
            try:
                reply = await self._run(command, handler, barrier)
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
            tracing.record_reply(span, status_name(reply))
            try:
                # Ack only once JetStream has the reply: a crash in between redelivers the command,
                # and the barrier answers it again.
                await self.js.publish(command.reply_subject, encode_reply(reply), headers=reply_headers(command, reply, _now_ms()))
                await message.ack()
            except Exception as error:
                logger.warning("reply not published; the command will be redelivered", extra={"error": str(error)})

    async def _run(self, command: Command, handler: HandlerFunction, barrier: Optional[IdempotencyBarrier]) -> Reply:
        try:
            if self.before_handler is not None:
                await self.before_handler(command)
            if barrier is not None:
                return await barrier.run(command, handler)
            output = handler(command)
            return Succeeded(await output if inspect.isawaitable(output) else output)
        except BusinessFailure as failure:
            return Failed(failure.code, failure.message)
        except RetryLater as retry:
            return Retry(retry.message, retry.after)
        except ReplyDeferred:
            return InProgress()
        except Exception as error:  # a bug or an outage: nothing recorded, try again
            logger.exception("handler failed; replying retry")
            return Retry(f"{type(error).__name__}: {error}")

    async def _heartbeat(self, command: Command, message: Any) -> None:
        """Until cancelled: at half the time left before the attempt's deadline (and JetStream's
        AckWait), tells both that the work goes on."""
        deadline = command.deadline.timestamp()
        acked_until = time.time() + self.ack_wait
        while True:
            left = min(deadline, acked_until) - time.time()
            await asyncio.sleep(max(0.1, left / 2))
            try:
                await message.in_progress()
                await self.js.publish(
                    command.reply_subject, encode_reply(InProgress()), headers=reply_headers(command, InProgress(), _now_ms())
                )
                now = time.time()
                acked_until = now + self.ack_wait
                # Baton moves the deadline to now + the step's timeout; without Baton-Timeout (an
                # older orchestrator) the attempt's first window is the best guess.
                window = command.timeout if command.timeout is not None else max(1.0, deadline - now)
                deadline = now + window
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("heartbeat not sent", extra={"error": str(error)})

    async def _dead_letter(self, message: Any, reason: str) -> None:
        logger.error("command sent to the dead letters", extra={"reason": reason, "subject": message.subject})
        subject, headers = dead_letter(message.subject, message.headers, reason, f"worker:{self.participant}")
        try:
            await self.js.publish(subject, message.data, headers=headers)
            await message.term()
        except Exception as error:
            logger.warning("dead letter not published; the command will be redelivered", extra={"error": str(error)})
            await message.nak(delay=1)


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["Worker", "Handlers", "ReplyDeferred", "DeferredReply", "STREAMS"]
