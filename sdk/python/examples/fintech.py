"""The fintech participants of Baton's demo in Python, on the Python worker SDK: the ledger
(debit, its refund, credit), fraud (score), notifications (send) and audit (record). They keep
the same tables as the Swift participants (Sources/BatonParticipants), so the same checks read
them, and the money-conservation test runs them under the same faults.

Run: python3 fintech.py ledger fraud notifications audit --nats-url URL --database-url URL
      [--ack-wait SECONDS] [--inject-slow-rate 0.05 --inject-slow-delay 2500] [--metrics-listen HOST:PORT]

It prints "ready" once every worker has bound to its consumer, and answers GET /healthz on
--metrics-listen (a supervisor's check).
"""

import argparse
import asyncio
import json
import logging
import random
import signal
import uuid
from datetime import datetime, timedelta, timezone

from psycopg_pool import AsyncConnectionPool

from baton_worker import BusinessFailure, Handlers, IdempotencyBarrier, Worker, tracing

SCHEMAS = {
    "ledger": [
        """CREATE TABLE IF NOT EXISTS ledger.accounts (
            id text PRIMARY KEY, currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            balance bigint NOT NULL CHECK (balance >= 0), opened_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE IF NOT EXISTS ledger.entries (
            id uuid PRIMARY KEY, account_id text NOT NULL REFERENCES ledger.accounts (id),
            kind text NOT NULL CHECK (kind IN ('opening', 'debit', 'credit', 'refund')),
            amount bigint NOT NULL CHECK (amount > 0), balance bigint NOT NULL, reference text NOT NULL,
            saga_id text, step text, created_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS entries_account ON ledger.entries (account_id, created_at)",
    ],
    "fraud": [
        """CREATE TABLE IF NOT EXISTS fraud.scores (
            saga_id text NOT NULL, transfer_id text NOT NULL, account text NOT NULL, amount bigint NOT NULL,
            score integer NOT NULL, reasons jsonb NOT NULL, scored_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS scores_account ON fraud.scores (account, scored_at)",
    ],
    "notifications": [
        """CREATE TABLE IF NOT EXISTS notifications.outbox (
            id uuid PRIMARY KEY, saga_id text NOT NULL, template text NOT NULL, account text NOT NULL,
            body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz)""",
    ],
    "audit": [
        """CREATE TABLE IF NOT EXISTS audit.events (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, saga_id text NOT NULL, event text NOT NULL,
            payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS events_saga ON audit.events (saga_id, seq)",
    ],
}

TEMPLATES = {
    "transfer-completed": "Your transfer {transfer_id} of {amount} {currency} has completed.",
    "transfer-failed": "Your transfer {transfer_id} of {amount} {currency} did not go through; nothing was taken.",
    "fraud-alert": "We stopped transfer {transfer_id} of {amount} {currency} for review.",
}


async def prepare(pool, name, barrier):
    async with pool.connection() as connection:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name + " schema",))
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
            for statement in SCHEMAS[name]:
                await connection.execute(statement)
    await barrier.prepare()


# The ledger ------------------------------------------------------------------------------------


def movement(payload):
    account = payload.get("account")
    amount = payload.get("amount")
    currency = payload.get("currency")
    if not isinstance(account, str) or not account:
        raise BusinessFailure("invalid_request", '"account" is required')
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BusinessFailure("invalid_amount", '"amount" must be a positive integer in minor units')
    if not isinstance(currency, str) or len(currency) != 3:
        raise BusinessFailure("invalid_request", '"currency" must be an ISO 4217 code')
    reference = payload.get("reference") or payload.get("reason") or ""
    return account, amount, currency, str(reference)


async def locked_balance(connection, account, currency):
    row = await (await connection.execute("SELECT balance, currency FROM ledger.accounts WHERE id = %s FOR UPDATE", (account,))).fetchone()
    if row is None:
        raise BusinessFailure("unknown_account", f"no account {account}")
    if row[1] != currency:
        raise BusinessFailure("currency_mismatch", f"account {account} is in {row[1]}, not {currency}")
    return row[0]


async def book(connection, command, account, amount, reference, kind, balance):
    entry = uuid.uuid4()
    await connection.execute("UPDATE ledger.accounts SET balance = %s WHERE id = %s", (balance, account))
    # Kept by leg (saga and step): a refund finds its debit this way even when the debit's reply,
    # and so its entry id, never reached the orchestrator.
    await connection.execute(
        "INSERT INTO ledger.entries (id, account_id, kind, amount, balance, reference, saga_id, step) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (entry, account, kind, amount, balance, reference, command.saga_id, command.step),
    )
    return {"entry_id": str(entry), "balance": balance}


def ledger(handlers, barrier):
    @handlers.action("debit", barrier=barrier)
    async def debit(command, connection):
        account, amount, currency, reference = movement(command.payload)
        balance = await locked_balance(connection, account, currency)
        if balance < amount:
            raise BusinessFailure("insufficient_funds", f"account {account} holds {balance}, less than {amount} {currency}")
        return await book(connection, command, account, amount, reference, "debit", balance - amount)

    @handlers.compensation("refund", barrier=barrier)
    async def refund(command, connection):
        account, amount, currency, reference = movement(command.payload)
        balance = await locked_balance(connection, account, currency)
        return await book(connection, command, account, amount, reference, "refund", balance + amount)

    @handlers.action("credit", barrier=barrier)
    async def credit(command, connection):
        account, amount, currency, reference = movement(command.payload)
        balance = await locked_balance(connection, account, currency)
        return await book(connection, command, account, amount, reference, "credit", balance + amount)


# Fraud: the Swift participant's rules ----------------------------------------------------------

LARGE, LARGE_SCORE, ROUND_UNIT, ROUND_SCORE = 500_000, 60, 100_000, 20
VELOCITY_LIMIT, VELOCITY_WINDOW, VELOCITY_SCORE, THRESHOLD = 5, timedelta(minutes=10), 50, 70


def fraud(handlers, barrier):
    @handlers.action("score", barrier=barrier)
    async def score(command, connection):
        payload = command.payload
        account, amount = payload.get("from_account"), payload.get("amount")
        if not isinstance(account, str) or not isinstance(amount, int) or isinstance(amount, bool):
            raise BusinessFailure("invalid_request", '"from_account" and an integer "amount" are required')
        transfer = payload.get("transfer_id") or command.saga_id
        # The account's transfers, serialized so that two concurrent ones both count.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (account,))
        since = datetime.now(timezone.utc) - VELOCITY_WINDOW
        recent = (await (await connection.execute(
            "SELECT count(*)::int FROM fraud.scores WHERE account = %s AND scored_at >= %s", (account, since))).fetchone())[0]
        total, reasons = 0, []
        if amount >= LARGE:
            total += LARGE_SCORE
            reasons.append("large amount")
        if amount % ROUND_UNIT == 0:
            total += ROUND_SCORE
            reasons.append("round amount")
        if recent >= VELOCITY_LIMIT:
            total += VELOCITY_SCORE
            reasons.append(f"{recent} transfers from {account} in the last 10m")
        if total >= THRESHOLD:
            raise BusinessFailure("fraud_suspected", f"score {total}: " + ", ".join(reasons))
        await connection.execute(
            "INSERT INTO fraud.scores (saga_id, transfer_id, account, amount, score, reasons) VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            (command.saga_id, transfer, account, amount, total, json.dumps(reasons)),
        )
        return {"score": total, "decision": "approve", "reasons": reasons}


# Notifications and audit -----------------------------------------------------------------------


def notifications(handlers, barrier):
    @handlers.action("send", barrier=barrier)
    async def send(command, connection):
        name = command.payload.get("template")
        if name not in TEMPLATES:
            raise BusinessFailure("unknown_template", "template must be one of " + ", ".join(sorted(TEMPLATES)))
        account = command.payload.get("account") or "-"
        body = TEMPLATES[name]
        for key, value in command.payload.items():
            body = body.replace("{" + key + "}", value if isinstance(value, str) else json.dumps(value))
        message = uuid.uuid4()
        await connection.execute(
            "INSERT INTO notifications.outbox (id, saga_id, template, account, body) VALUES (%s, %s, %s, %s, %s)",
            (message, command.saga_id, name, account, body),
        )
        return {"message_id": str(message)}


def audit(handlers, barrier):
    @handlers.action("record", barrier=barrier)
    async def record(command, connection):
        saga = command.payload.get("saga_id") or command.saga_id
        event = command.payload.get("event") or command.step
        row = await (await connection.execute(
            "INSERT INTO audit.events (saga_id, event, payload) VALUES (%s, %s, %s::jsonb) RETURNING seq",
            (saga, event, json.dumps(command.payload)))).fetchone()
        return {"seq": row[0]}


PARTICIPANTS = {"ledger": ledger, "fraud": fraud, "notifications": notifications, "audit": audit}


async def health(host, port):
    async def answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host, port)


async def main():
    parser = argparse.ArgumentParser(description="Baton's fintech participants in Python")
    parser.add_argument("participants", nargs="+", choices=sorted(PARTICIPANTS))
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--ack-wait", type=float, default=30.0)
    parser.add_argument("--inject-slow-rate", type=float, default=0.0, help="fault injection: the share of commands answered late")
    parser.add_argument("--inject-slow-delay", type=int, default=0, help="fault injection: how late, in milliseconds")
    parser.add_argument("--metrics-listen", default=None, help="HOST:PORT answering GET /healthz")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Spans over OTLP when OTEL_* asks for them (docs/operations.md, Traces).
    provider = tracing.configure_from_environment("baton-fintech-python")

    pool = AsyncConnectionPool(options.database_url, min_size=2, max_size=16, open=False)
    await pool.open()

    async def answer_late(command):
        if random.random() < options.inject_slow_rate:
            await asyncio.sleep(options.inject_slow_delay / 1000)

    workers = []
    for name in options.participants:
        barrier = IdempotencyBarrier(pool, table=f"{name}.baton_barrier")
        await prepare(pool, name, barrier)
        handlers = Handlers()
        PARTICIPANTS[name](handlers, barrier)
        workers.append(
            Worker(
                name, options.nats_url, handlers, concurrency=16, ack_wait=options.ack_wait,
                # A late answer must be late: heartbeats would keep the step alive.
                heartbeats=options.inject_slow_rate == 0,
                before_handler=answer_late if options.inject_slow_rate > 0 else None,
            )
        )
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, lambda: [worker.stop() for worker in workers])
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    await asyncio.gather(*(worker.wait_until_ready() for worker in workers))
    server = None
    if options.metrics_listen:
        host, _, port = options.metrics_listen.rpartition(":")
        server = await health(host, int(port))
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    if server:
        server.close()
    await pool.close()
    if provider is not None:
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
