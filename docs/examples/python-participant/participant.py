"""A Baton participant written from docs/protocol.md alone, with nats-py.

It serves the participant named on the command line (default "quotes") with two actions:

- ``quote``: replies ``succeeded`` with ``{"total": amount * quantity}``, or ``failed`` with code
  ``invalid_quantity`` when the quantity is not positive;
- ``release`` (a compensation): replies ``succeeded`` with ``null``.

Commands it cannot understand go to the dead letters with the reason. It keeps its results in
memory by idempotency key, so a repeated command gets the first answer (a real participant keeps
them in its database, in the same transaction as its own writes).

Run: ``BATON_NATS_URL=nats://127.0.0.1:4222 python3 participant.py quotes`` (tested with
nats-py 2.16.0: ``pip install nats-py==2.16.0``).
"""

import asyncio
import json
import os
import signal
import sys

import nats
from nats.errors import TimeoutError as FetchTimeout
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

PROTOCOL = "1"
REQUIRED = ["Baton-Saga-Id", "Baton-Step", "Baton-Direction", "Baton-Attempt", "Baton-Idempotency-Key", "Baton-Deadline"]


class Poison(Exception):
    """The command does not follow the protocol: it goes to the dead letters."""


def read_command(msg):
    headers = msg.headers or {}
    if headers.get("Baton-Protocol") != PROTOCOL:
        raise Poison(f"unsupported protocol version {headers.get('Baton-Protocol')}")
    for name in REQUIRED:
        if not headers.get(name):
            raise Poison(f"header {name} is missing")
    if headers["Baton-Direction"] not in ("action", "compensation"):
        raise Poison(f"header Baton-Direction must be action or compensation, got '{headers['Baton-Direction']}'")
    if not headers["Baton-Attempt"].isdigit() or int(headers["Baton-Attempt"]) < 1:
        raise Poison(f"header Baton-Attempt must be a positive integer, got '{headers['Baton-Attempt']}'")
    try:
        payload = json.loads(msg.data)
    except ValueError:
        raise Poison("the body is not JSON")
    _, _, participant, action = msg.subject.split(".", 3)
    return participant, action, headers, payload


def handle(action, direction, payload):
    """The business logic: returns the reply body."""
    if action == "quote" and direction == "action":
        quantity = payload.get("quantity", 0)
        if not isinstance(quantity, int) or quantity <= 0:
            return {"status": "failed", "error": {"code": "invalid_quantity", "message": f"quantity {quantity} is not positive"}}
        return {"status": "succeeded", "output": {"total": payload["amount"] * quantity}}
    if action == "release" and direction == "compensation":
        return {"status": "succeeded", "output": None}
    raise Poison(f"no {direction} handler for '{action}'")


async def serve(participant, url):
    nc = await nats.connect(servers=url.split(","), name=f"python-{participant}")
    js = nc.jetstream()
    # The streams Baton uses (docs/protocol.md, "Streams"); creating them again is harmless.
    for name, subject, retention in [
        ("BATON_COMMANDS", "baton.cmd.>", RetentionPolicy.WORK_QUEUE),
        ("BATON_REPLIES", "baton.reply.>", RetentionPolicy.WORK_QUEUE),
        ("BATON_DLQ", "baton.dlq.>", RetentionPolicy.LIMITS),
    ]:
        try:
            await js.add_stream(StreamConfig(name=name, subjects=[subject], retention=retention, duplicate_window=120))
        except Exception:
            pass  # it exists (perhaps with Baton's own settings): use it as it is
    await js.add_consumer(
        "BATON_COMMANDS",
        ConsumerConfig(durable_name=participant, filter_subject=f"baton.cmd.{participant}.>", ack_policy=AckPolicy.EXPLICIT, ack_wait=30),
    )
    sub = await js.pull_subscribe_bind(durable=participant, stream="BATON_COMMANDS")
    answered = {}  # idempotency key -> reply body
    print(f"participant {participant} ready", flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            messages = await sub.fetch(batch=10, timeout=0.5)
        except (FetchTimeout, asyncio.TimeoutError):
            # An empty fetch times out. nats-py raises its own TimeoutError or, depending on the
            # version and where the wait ended, asyncio's: both mean "no command yet".
            continue
        for msg in messages:
            try:
                _, action, headers, payload = read_command(msg)
                key = headers["Baton-Idempotency-Key"]
                body = answered.get(key) or handle(action, headers["Baton-Direction"], payload)
                answered[key] = body
            except Poison as poison:
                letter_headers = dict(msg.headers or {})
                letter_headers.update(
                    {
                        "Baton-Dead-Letter-Reason": str(poison),
                        "Baton-Dead-Letter-Subject": msg.subject,
                        "Baton-Dead-Letter-Source": f"worker:{participant}",
                    }
                )
                original_id = letter_headers.pop("Nats-Msg-Id", None)
                if original_id:
                    letter_headers["Nats-Msg-Id"] = f"dlq.{original_id}"
                await js.publish("baton.dlq." + msg.subject[len("baton.") :], msg.data, headers=letter_headers)
                await msg.term()
                continue
            command_id = f"{headers['Baton-Saga-Id']}.{headers['Baton-Step']}.{headers['Baton-Direction']}.{headers['Baton-Attempt']}"
            reply_headers = {
                "Baton-Protocol": PROTOCOL,
                "Nats-Msg-Id": f"{command_id}.{body['status']}",
                "Baton-Saga-Id": headers["Baton-Saga-Id"],
                "Baton-Step": headers["Baton-Step"],
                "Baton-Direction": headers["Baton-Direction"],
                "Baton-Attempt": headers["Baton-Attempt"],
            }
            for optional in ("Baton-Correlation-Id", "traceparent"):
                if headers.get(optional):
                    reply_headers[optional] = headers[optional]
            # Ack the command only once JetStream has the reply.
            await js.publish(msg.subject.replace("baton.cmd.", "baton.reply.", 1), json.dumps(body).encode(), headers=reply_headers)
            await msg.ack()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "quotes", os.environ.get("BATON_NATS_URL", "nats://127.0.0.1:4222")))
