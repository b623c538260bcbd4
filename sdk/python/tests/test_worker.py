"""The worker and the barrier against a real nats-server (started here, on loopback) and the real
PostgreSQL of BATON_DATABASE_URL (scripts/services): what docs/protocol.md asks of a participant."""

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import uuid
from datetime import datetime, timedelta, timezone

import nats
import psycopg
from psycopg_pool import AsyncConnectionPool

from baton_worker import (
    BusinessFailure,
    DeferredReply,
    Handlers,
    IdempotencyBarrier,
    ReplyDeferred,
    RetryLater,
    Succeeded,
    Worker,
)


# The tests make handlers fail on purpose: their tracebacks are expected, not news.
logging.getLogger("baton_worker").setLevel(logging.CRITICAL)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NATSServer:
    """A JetStream nats-server of the test's own, so that it may read every subject freely."""

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="baton-py-nats-")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"nats://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def database_url():
    url = os.environ.get("BATON_DATABASE_URL")
    if not url:
        raise unittest.SkipTest("BATON_DATABASE_URL is not set (scripts/services env)")
    return url


class WorkerTests(unittest.IsolatedAsyncioTestCase):
    """Each test: a participant of its own name, a database of its own, a worker, and a collector of
    everything published on baton.reply.> and baton.dlq.>."""

    @classmethod
    def setUpClass(cls):
        cls.nats = NATSServer().__enter__()
        admin = database_url()
        cls.database = "baton_py_" + uuid.uuid4().hex[:12]
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {cls.database}")
        cls.database_url = admin.rsplit("/", 1)[0] + "/" + cls.database

    @classmethod
    def tearDownClass(cls):
        cls.nats.__exit__()
        with psycopg.connect(database_url(), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {cls.database} WITH (FORCE)")

    async def asyncSetUp(self):
        self.participant = "py" + uuid.uuid4().hex[:8]
        self.pool = AsyncConnectionPool(self.database_url, min_size=1, max_size=8, open=False)
        await self.pool.open()
        self.barrier = IdempotencyBarrier(self.pool, table=f"barrier_{self.participant}")
        await self.barrier.prepare()
        async with self.pool.connection() as connection:
            await connection.execute(f"CREATE TABLE effects_{self.participant} (saga text, step text, direction text, note text)")
        self.nc = await nats.connect(self.nats.url)
        self.js = self.nc.jetstream()
        self.replies = []
        self.dead = []
        await self.nc.subscribe(f"baton.reply.{self.participant}.>", cb=self._collect(self.replies))
        await self.nc.subscribe(f"baton.dlq.cmd.{self.participant}.>", cb=self._collect(self.dead))
        self.handlers = Handlers()
        self.runs = {}
        self.worker = None
        self.task = None

    async def asyncTearDown(self):
        if self.worker:
            self.worker.stop()
            await asyncio.wait_for(self.task, 30)
        await self.nc.close()
        await self.pool.close()

    @staticmethod
    def _collect(into):
        async def collect(message):
            into.append(message)

        return collect

    async def start(self, **options):
        self.worker = Worker(self.participant, self.nats.url, self.handlers, **options)
        self.task = asyncio.create_task(self.worker.run())
        await asyncio.wait_for(self.worker.wait_until_ready(), 10)

    async def send(self, action, payload, saga=None, step="leg", direction="action", attempt=1, deadline_in=30.0, extra=None):
        saga = saga or str(uuid.uuid4())
        deadline = datetime.now(timezone.utc) + timedelta(seconds=deadline_in)
        headers = {
            "Baton-Protocol": "1",
            "Nats-Msg-Id": f"{saga}.{step}.{direction}.{attempt}",
            "Baton-Saga-Id": saga,
            "Baton-Workflow": "py-test",
            "Baton-Step": step,
            "Baton-Direction": direction,
            "Baton-Attempt": str(attempt),
            "Baton-Idempotency-Key": f"{saga}.{step}.{direction}",
            "Baton-Deadline": deadline.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "Baton-Timeout": "2s",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
        headers.update(extra or {})
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.js.publish(f"baton.cmd.{self.participant}.{action}", body, headers=headers)
        return saga

    async def until(self, predicate, seconds=10.0):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if predicate():
                return
            await asyncio.sleep(0.05)
        self.fail("timed out waiting")

    def bodies(self, saga, status=None):
        found = [json.loads(m.data) for m in self.replies if m.headers.get("Baton-Saga-Id") == saga]
        return [b for b in found if status is None or b["status"] == status]

    async def commands_left(self):
        return (await self.js.stream_info("BATON_COMMANDS")).state.messages

    def counting(self, name, result=None, delay=0.0):
        async def handler(command, connection=None):
            self.runs[name] = self.runs.get(name, 0) + 1
            if delay:
                await asyncio.sleep(delay)
            if connection is not None:
                await connection.execute(
                    f"INSERT INTO effects_{self.participant} VALUES (%s, %s, %s, %s)",
                    (command.saga_id, command.step, command.direction, name),
                )
            return result(command) if callable(result) else result

        return handler

    async def effects(self):
        async with self.pool.connection() as connection:
            cursor = await connection.execute(f"SELECT saga, direction, note FROM effects_{self.participant} ORDER BY 1, 2")
            return await cursor.fetchall()

    # ---------------------------------------------------------------------------------------

    async def test_a_command_is_answered_then_acknowledged_with_its_headers_copied(self):
        self.handlers.action("quote")(self.counting("quote", lambda c: {"total": c.payload["amount"] * 2}))
        await self.start()
        saga = await self.send("quote", {"amount": 21}, extra={"Baton-Correlation-Id": "req-1"})
        await self.until(lambda: self.bodies(saga))
        reply = [m for m in self.replies if m.headers["Baton-Saga-Id"] == saga][0]
        self.assertEqual(json.loads(reply.data), {"status": "succeeded", "output": {"total": 42}})
        self.assertEqual(reply.subject, f"baton.reply.{self.participant}.quote")
        self.assertEqual(reply.headers["Nats-Msg-Id"], f"{saga}.leg.action.1.succeeded")
        self.assertEqual(reply.headers["Baton-Correlation-Id"], "req-1")
        self.assertTrue(reply.headers["traceparent"].startswith("00-4bf92f"))
        await self.until(lambda: True)
        for _ in range(50):
            if await self.commands_left() == 0:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(await self.commands_left(), 0, "the command is acknowledged (removed from the work queue)")

    async def test_an_idle_worker_keeps_pulling_long_past_its_fetch_timeout(self):
        self.handlers.action("quote")(self.counting("quote", {"ok": True}))
        await self.start(fetch_timeout=0.3)
        await asyncio.sleep(4)  # more than ten empty pulls
        self.assertFalse(self.task.done(), self.task.exception() if self.task.done() else None)
        saga = await self.send("quote", {})
        await self.until(lambda: self.bodies(saga, "succeeded"))

    async def test_commands_it_cannot_read_go_to_the_dead_letters_with_the_reason(self):
        self.handlers.action("quote")(self.counting("quote", {}))
        await self.start()
        bad_json = await self.send("quote", b'{"a": 1, "a": 2}')
        no_attempt = await self.send("quote", {}, extra={"Baton-Attempt": "zero"})
        unknown = await self.send("unknown-action", {})
        await self.until(lambda: len(self.dead) == 3)
        reasons = {m.headers["Baton-Saga-Id"]: m.headers["Baton-Dead-Letter-Reason"] for m in self.dead}
        self.assertIn("appears twice", reasons[bad_json])
        self.assertIn("Baton-Attempt must be a positive integer", reasons[no_attempt])
        self.assertIn("no action handler for 'unknown-action'", reasons[unknown])
        letter = [m for m in self.dead if m.headers["Baton-Saga-Id"] == bad_json][0]
        self.assertEqual(letter.data, b'{"a": 1, "a": 2}')
        self.assertEqual(letter.headers["Nats-Msg-Id"], f"dlq.{bad_json}.leg.action.1")
        self.assertEqual(letter.headers["Baton-Dead-Letter-Source"], f"worker:{self.participant}")
        self.assertEqual(letter.headers["Baton-Dead-Letter-Subject"], f"baton.cmd.{self.participant}.quote")
        self.assertEqual(self.runs, {})
        for _ in range(50):
            if await self.commands_left() == 0:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(await self.commands_left(), 0, "dead-lettered commands are terminated, not redelivered")

    async def test_the_barrier_answers_a_repeat_once_and_keeps_an_action_and_its_compensation_apart(self):
        self.handlers.action("debit", barrier=self.barrier)(self.counting("debit", {"entry": "e-1"}))
        self.handlers.compensation("debit", barrier=self.barrier)(self.counting("refund", {"refunded": True}))
        await self.start()

        # A repeated command (another attempt, same key) gets the first result; the effect once.
        saga = await self.send("debit", {}, attempt=1)
        await self.until(lambda: self.bodies(saga, "succeeded"))
        await self.send("debit", {}, saga=saga, attempt=2)
        await self.until(lambda: len(self.bodies(saga, "succeeded")) == 2)
        self.assertEqual(self.bodies(saga, "succeeded")[1]["output"], {"entry": "e-1"})
        self.assertEqual(self.runs["debit"], 1)
        # Its compensation runs (the action took effect).
        await self.send("debit", {}, saga=saga, direction="compensation")
        await self.until(lambda: {"status": "succeeded", "output": {"refunded": True}} in self.bodies(saga))

        # A compensation before its action: a null compensation; the late action is refused.
        early = await self.send("debit", {}, direction="compensation")
        await self.until(lambda: self.bodies(early))
        self.assertEqual(self.bodies(early), [{"status": "succeeded", "output": None}])
        await self.send("debit", {}, saga=early)
        await self.until(lambda: len(self.bodies(early)) == 2)
        self.assertEqual(self.bodies(early)[1]["status"], "failed")
        self.assertEqual(self.bodies(early)[1]["error"]["code"], "compensated")
        self.assertEqual(self.runs, {"debit": 1, "refund": 1})
        self.assertEqual(await self.effects(), sorted([(saga, "action", "debit"), (saga, "compensation", "refund")]))

    async def test_an_action_and_its_compensation_arriving_together_never_both_miss(self):
        self.handlers.action("debit", barrier=self.barrier)(self.counting("debit", {"entry": "e"}, delay=0.3))
        self.handlers.compensation("debit", barrier=self.barrier)(self.counting("refund", None))
        await self.start(concurrency=8)
        sagas = []
        for _ in range(6):
            saga = str(uuid.uuid4())
            await self.send("debit", {}, saga=saga)
            await self.send("debit", {}, saga=saga, direction="compensation")
            sagas.append(saga)
        await self.until(lambda: all(len(self.bodies(s)) == 2 for s in sagas), 20)
        effects = await self.effects()
        for saga in sagas:
            mine = [note for s, _, note in effects if s == saga]
            # Either the debit ran and the refund undid it, or the refund came first (null) and the
            # debit was refused: never a debit left standing.
            self.assertIn(mine, [["debit", "refund"], []], saga)

    async def test_a_business_failure_holds_for_its_attempt_and_earlier_ones_and_a_later_attempt_decides_afresh(self):
        balance = {"funds": 0}

        async def debit(command, connection):
            await connection.execute(
                f"INSERT INTO effects_{self.participant} VALUES (%s, %s, %s, 'attempted')",
                (command.saga_id, command.step, command.direction),
            )
            if balance["funds"] < 10:
                raise BusinessFailure("insufficient_funds", f"balance {balance['funds']}")
            return {"debited": 10}

        self.handlers.action("debit", barrier=self.barrier)(debit)
        await self.start()
        saga = await self.send("debit", {})
        await self.until(lambda: self.bodies(saga, "failed"))
        self.assertEqual(self.bodies(saga, "failed")[0]["error"]["code"], "insufficient_funds")
        self.assertEqual(await self.effects(), [], "a business failure's writes are undone")
        balance["funds"] = 100
        # A late copy of attempt 1 gets the recorded failure, though the funds are there now: the
        # orchestrator settled the step as failed and will not compensate it.
        await self.send("debit", {}, saga=saga, attempt=1, extra={"Nats-Msg-Id": f"{saga}.leg.action.1.late-copy"})
        await self.until(lambda: len(self.bodies(saga, "failed")) == 2)
        self.assertEqual(await self.effects(), [])
        await self.send("debit", {}, saga=saga, attempt=2)
        await self.until(lambda: self.bodies(saga, "succeeded"))
        self.assertEqual(self.bodies(saga, "succeeded")[0]["output"], {"debited": 10})

    async def test_retry_later_and_unexpected_errors_answer_retry(self):
        async def flaky(command):
            if command.payload.get("boom"):
                raise RuntimeError("database is failing over")
            raise RetryLater("rate limited", after=2.5)

        self.handlers.action("call")(flaky)
        await self.start()
        limited = await self.send("call", {})
        broken = await self.send("call", {"boom": True})
        await self.until(lambda: self.bodies(limited) and self.bodies(broken))
        self.assertEqual(self.bodies(limited), [{"status": "retry", "message": "rate limited", "retry_after": "2500ms"}])
        self.assertEqual(self.bodies(broken)[0]["status"], "retry")
        self.assertIn("database is failing over", self.bodies(broken)[0]["message"])

    async def test_long_work_sends_heartbeats_each_with_its_own_message_id_and_is_not_redelivered(self):
        self.handlers.action("slow")(self.counting("slow", {"done": True}, delay=3.0))
        await self.start(ack_wait=1.0)
        saga = await self.send("slow", {}, deadline_in=1.5)
        await self.until(lambda: self.bodies(saga, "succeeded"), 15)
        beats = [m for m in self.replies if m.headers["Baton-Saga-Id"] == saga and json.loads(m.data)["status"] == "in_progress"]
        self.assertGreaterEqual(len(beats), 2)
        ids = [m.headers["Nats-Msg-Id"] for m in beats]
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(i.startswith(f"{saga}.leg.action.1.in_progress.") for i in ids))
        self.assertEqual(self.runs["slow"], 1, "heartbeats kept JetStream from redelivering it")

    async def test_a_deferred_reply_is_answered_later_from_anywhere(self):
        kept = []

        async def authorize(command):
            kept.append(DeferredReply.of(command).to_json())
            raise ReplyDeferred()

        self.handlers.action("authorize")(authorize)
        await self.start()
        saga = await self.send("authorize", {"card": "4242"})
        await self.until(lambda: self.bodies(saga, "in_progress"))
        for _ in range(50):
            if await self.commands_left() == 0:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(await self.commands_left(), 0, "a deferred command is acknowledged")
        # The provider's callback, in another process: the stored form is all it needs.
        await DeferredReply.from_json(kept[0]).answer(Succeeded({"authorization": "a-1"}), self.js)
        await self.until(lambda: self.bodies(saga, "succeeded"))
        done = [m for m in self.replies if m.headers["Baton-Saga-Id"] == saga and json.loads(m.data)["status"] == "succeeded"][0]
        self.assertEqual(done.headers["Nats-Msg-Id"], f"{saga}.leg.action.1.succeeded")
        self.assertTrue(done.headers["traceparent"].startswith("00-4bf92f"))


if __name__ == "__main__":
    unittest.main()
