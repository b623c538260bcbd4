"""The idempotency barrier on PostgreSQL (psycopg 3): "exactly once in effect" for a participant.

The rules are docs/protocol.md's "The idempotency barrier", the same as the Swift SDK's
``IdempotencyBarrier``, on the same table, under the same lock: a Swift and a Python process of one
participant can share a database.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from psycopg import sql

from .protocol import Command, Failed, Reply, Succeeded, reply_body, reply_from_body


class BusinessFailure(Exception):
    """Raised by a handler for a business failure with no effect (insufficient funds): the reply is
    ``failed`` with this code, and the handler's writes are undone."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RetryLater(Exception):
    """Raised by a handler for a transient failure with no effect: the reply is ``retry``, not
    sooner than ``after`` seconds when given. Nothing is recorded: the next attempt runs afresh."""

    def __init__(self, message: str = "", after: float | None = None):
        super().__init__(message)
        self.message = message
        self.after = after


Handler = Callable[[Command, Any], Awaitable[Any]]


class IdempotencyBarrier:
    """Runs a handler at most once in effect per leg and direction, in a transaction on the
    participant's own database, with the barrier's record committed with the handler's writes.

    ``pool`` is a ``psycopg_pool.AsyncConnectionPool`` of the participant's database; ``table`` a
    plain identifier, optionally schema-qualified (``ledger.baton_barrier``).
    """

    def __init__(self, pool: Any, table: str = "baton_barrier"):
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(part.replace("_", "").isalnum() for part in parts):
            raise ValueError(f"the barrier's table must be a plain identifier, optionally schema-qualified, got '{table}'")
        self.pool = pool
        self.table_name = table
        self.table = sql.Identifier(*parts)

    async def prepare(self) -> None:
        """Creates the barrier's table if it is missing (safe when several processes start at once)."""
        async with self.pool.connection() as connection:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.table_name,))
                await connection.execute(
                    sql.SQL(
                        """
                        CREATE TABLE IF NOT EXISTS {} (
                            saga_id          text        NOT NULL,
                            step             text        NOT NULL,
                            direction        text        NOT NULL CHECK (direction IN ('action', 'compensation')),
                            idempotency_key  text        NOT NULL,
                            attempt          integer     NOT NULL,
                            outcome          text        NOT NULL
                                CHECK (outcome IN ('succeeded', 'failed', 'null_compensation', 'refused')),
                            reply            jsonb       NOT NULL,
                            recorded_at      timestamptz NOT NULL DEFAULT now(),
                            PRIMARY KEY (saga_id, step, direction)
                        )
                        """
                    ).format(self.table)
                )

    async def run(self, command: Command, handler: Handler) -> Reply:
        """The reply to ``command``: the recorded one, the barrier's own, or ``handler``'s.

        ``handler(command, connection)`` runs inside the transaction; its return value is the
        output. A ``BusinessFailure`` undoes its writes (to a savepoint) and answers ``failed``; a
        ``RetryLater`` or any other exception rolls everything back and propagates.
        """
        async with self.pool.connection() as connection:
            async with connection.transaction():
                # One leg at a time: an action and its compensation never decide concurrently. The
                # same key as the Swift SDK's, so processes in both languages serialize together.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (command.leg,))
                cursor = await connection.execute(
                    sql.SQL("SELECT direction, outcome, attempt, reply FROM {} WHERE saga_id = %s AND step = %s").format(self.table),
                    (command.saga_id, command.step),
                )
                recorded = {direction: (outcome, attempt, reply) for direction, outcome, attempt, reply in await cursor.fetchall()}

                # A recorded failed answers its attempt and every earlier one (a late copy of an
                # earlier attempt must not take effect after the engine settled the step as failed);
                # a later attempt, which the engine sends only to retry on purpose, runs afresh.
                mine = recorded.get(command.direction)
                if mine is not None and (mine[0] != "failed" or command.attempt <= mine[1]):
                    return reply_from_body(_json(mine[2]))
                if command.direction == "action" and "compensation" in recorded:
                    reply: Reply = Failed(
                        "compensated",
                        f"step {command.step} of saga {command.saga_id} was already compensated: the action must not take effect",
                    )
                    await self._record(connection, command, "refused", reply)
                    return reply
                if command.direction == "compensation" and (recorded.get("action") or ("",))[0] != "succeeded":
                    reply = Succeeded(None)
                    await self._record(connection, command, "null_compensation", reply)
                    return reply

                try:
                    async with connection.transaction():  # a savepoint
                        output = await handler(command, connection)
                except BusinessFailure as failure:
                    # No effect: the writes are undone; the answer is kept for this attempt and the
                    # earlier ones.
                    reply = Failed(failure.code, failure.message)
                    await self._record(connection, command, "failed", reply)
                    return reply
                reply = Succeeded(output)
                await self._record(connection, command, "succeeded", reply)
                return reply

    async def _record(self, connection: Any, command: Command, outcome: str, reply: Reply) -> None:
        await connection.execute(
            sql.SQL(
                "INSERT INTO {} (saga_id, step, direction, idempotency_key, attempt, outcome, reply) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) "
                "ON CONFLICT (saga_id, step, direction) DO UPDATE "
                "SET attempt = excluded.attempt, outcome = excluded.outcome, reply = excluded.reply, recorded_at = now()"
            ).format(self.table),
            (
                command.saga_id,
                command.step,
                command.direction,
                command.idempotency_key,
                command.attempt,
                outcome,
                json.dumps(reply_body(reply)),
            ),
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value
