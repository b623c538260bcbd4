"""A Baton participant in Python, on the Python worker SDK (sdk/python, ``baton-worker``).

It serves the participant named on the command line (default "quotes") with two actions:

- ``quote``: replies ``succeeded`` with ``{"total": amount * quantity}``, or ``failed`` with code
  ``invalid_quantity`` when the quantity is not positive;
- ``release`` (a compensation): replies ``succeeded`` with ``null``.

Both are pure functions of the payload, so they need no idempotency barrier: answering a repeated
command again gives the same answer. A participant with effects (a ledger) registers its handlers
with ``barrier=IdempotencyBarrier(pool)`` so that each leg takes effect once (sdk/python/README.md).
The SDK dead-letters what it cannot read, sends heartbeats, and acks only after the reply is stored.

Run: ``pip install ./sdk/python`` (it pins nats-py 2.16 and psycopg 3), then
``BATON_NATS_URL=nats://127.0.0.1:4222 python3 participant.py quotes``.
"""

import asyncio
import os
import signal
import sys

from baton_worker import BusinessFailure, Handlers, Worker


def handlers() -> Handlers:
    served = Handlers()

    @served.action("quote")
    async def quote(command):
        quantity = command.payload.get("quantity", 0)
        if not isinstance(quantity, int) or quantity <= 0:
            raise BusinessFailure("invalid_quantity", f"quantity {quantity} is not positive")
        return {"total": command.payload["amount"] * quantity}

    @served.compensation("release")
    async def release(command):
        return None

    return served


async def main(participant: str, url: str) -> None:
    worker = Worker(participant, url, handlers())
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, worker.stop)
    running = asyncio.create_task(worker.run())
    await worker.wait_until_ready()
    print(f"participant {participant} ready", flush=True)
    await running


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "quotes", os.environ.get("BATON_NATS_URL", "nats://127.0.0.1:4222")))
