"""The protocol's rules, with no servers (docs/protocol.md)."""

import json
import unittest

from baton_worker import Failed, InProgress, ProtocolViolation, Retry, Succeeded, parse_command, parse_duration, parse_strict_json
from baton_worker.protocol import dead_letter, encode_reply, reply_from_body, reply_headers

SAGA = "0190f5a4-7b1c-7d2e-8f00-000000000000"


def headers(**changes):
    base = {
        "Baton-Protocol": "1",
        "Nats-Msg-Id": f"{SAGA}.debit-sender.action.2",
        "Baton-Saga-Id": SAGA,
        "Baton-Workflow": "funds-transfer",
        "Baton-Step": "debit-sender",
        "Baton-Direction": "action",
        "Baton-Attempt": "2",
        "Baton-Idempotency-Key": f"{SAGA}.debit-sender.action",
        "Baton-Deadline": "2026-11-21T14:05:30.250Z",
        "Baton-Timeout": "30s",
        "Baton-Correlation-Id": "req-7f3a",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class CommandTests(unittest.TestCase):
    def test_a_command_reads_every_header(self):
        command = parse_command("baton.cmd.ledger.debit", headers(), b'{"amount": 2500}')
        self.assertEqual((command.participant, command.action, command.step), ("ledger", "debit", "debit-sender"))
        self.assertEqual((command.direction, command.attempt, command.timeout), ("action", 2, 30.0))
        self.assertEqual(command.payload, {"amount": 2500})
        self.assertEqual(command.leg, f"{SAGA}/debit-sender")
        self.assertEqual(command.reply_subject, "baton.reply.ledger.debit")
        self.assertEqual(command.deadline.isoformat(), "2026-11-21T14:05:30.250000+00:00")

    def test_each_broken_rule_is_named_in_order(self):
        cases = [
            (headers(Baton_Protocol="2"), b"{}", "unsupported protocol version 2"),
            (headers(Baton_Protocol=None), b"{}", "header Baton-Protocol is missing"),
            (headers(Baton_Saga_Id=None, Baton_Step=None), b"{}", "header Baton-Saga-Id is missing"),
            (headers(Baton_Direction="undo"), b"{}", "Baton-Direction must be action or compensation"),
            (headers(Baton_Attempt="0"), b"{}", "Baton-Attempt must be a positive integer"),
            (headers(Baton_Attempt="-1"), b"{}", "Baton-Attempt must be a positive integer"),
            (headers(Baton_Deadline="tomorrow"), b"{}", "Baton-Deadline must be an RFC 3339 time"),
            (headers(), b'{"a": 1, "a": 2}', "appears twice"),
            (headers(), b"9223372036854775808", "does not fit 64 bits"),
            (headers(), b"[" * 65 + b"]" * 65, "deeper than 64"),
            (headers(), b"NaN", "is not JSON"),
            (headers(), b"\xff", "not UTF-8"),
            (headers(), b"{", "not strict JSON"),
        ]
        for given, body, reason in cases:
            with self.subTest(reason=reason):
                with self.assertRaises(ProtocolViolation) as raised:
                    parse_command("baton.cmd.ledger.debit", given, body)
                self.assertIn(reason, str(raised.exception))
        with self.assertRaises(ProtocolViolation):
            parse_command("baton.cmd.ledger", headers(), b"{}")

    def test_strict_json_keeps_what_is_allowed(self):
        self.assertEqual(parse_strict_json(b"[" * 64 + b"]" * 64), parse_strict_json(b"[" * 64 + b"]" * 64))
        self.assertEqual(parse_strict_json(b"-9223372036854775808"), -(2**63))
        self.assertEqual(parse_strict_json('{"name": "Zoë"}'.encode()), {"name": "Zoë"})

    def test_an_unknown_timeout_is_left_out(self):
        self.assertIsNone(parse_command("baton.cmd.ledger.debit", headers(Baton_Timeout=None), b"{}").timeout)
        self.assertIsNone(parse_command("baton.cmd.ledger.debit", headers(Baton_Timeout="soon"), b"{}").timeout)


class ReplyTests(unittest.TestCase):
    command = parse_command("baton.cmd.ledger.debit", headers(), b"{}")

    def test_message_ids_and_copied_headers(self):
        done = reply_headers(self.command, Succeeded({"entry_id": "e-1"}))
        self.assertEqual(done["Nats-Msg-Id"], f"{SAGA}.debit-sender.action.2.succeeded")
        self.assertEqual(done["Baton-Attempt"], "2")
        self.assertEqual(done["Baton-Correlation-Id"], "req-7f3a")
        self.assertTrue(done["traceparent"].startswith("00-4bf92f"))
        beat = reply_headers(self.command, InProgress(), 1764590000123)
        self.assertEqual(beat["Nats-Msg-Id"], f"{SAGA}.debit-sender.action.2.in_progress.1764590000123")

    def test_bodies(self):
        self.assertEqual(json.loads(encode_reply(Succeeded(None))), {"status": "succeeded", "output": None})
        self.assertEqual(
            json.loads(encode_reply(Failed("insufficient_funds", "no"))),
            {"status": "failed", "error": {"code": "insufficient_funds", "message": "no"}},
        )
        self.assertEqual(json.loads(encode_reply(Retry("later", 2.5))), {"status": "retry", "message": "later", "retry_after": "2500ms"})
        self.assertEqual(json.loads(encode_reply(Retry("later", 5))), {"status": "retry", "message": "later", "retry_after": "5s"})
        self.assertEqual(json.loads(encode_reply(InProgress())), {"status": "in_progress"})
        for reply in [Succeeded({"a": [1]}), Failed("x", "y"), Retry("m", 0.25), InProgress()]:
            self.assertEqual(reply_from_body(json.loads(encode_reply(reply))), reply)

    def test_durations(self):
        self.assertEqual(parse_duration("250ms"), 0.25)
        self.assertEqual(parse_duration("1h30m"), 5400.0)
        self.assertEqual(parse_duration("1.5s"), 1.5)
        for text in ["5", "5x", "", "s", "366d", None, 5]:
            self.assertIsNone(parse_duration(text), text)

    def test_dead_letter_keeps_headers_and_renames_the_message_id(self):
        subject, copied = dead_letter("baton.cmd.ledger.debit", headers(), "header Baton-Attempt is missing", "worker:ledger")
        self.assertEqual(subject, "baton.dlq.cmd.ledger.debit")
        self.assertEqual(copied["Nats-Msg-Id"], f"dlq.{SAGA}.debit-sender.action.2")
        self.assertEqual(copied["Baton-Dead-Letter-Reason"], "header Baton-Attempt is missing")
        self.assertEqual(copied["Baton-Dead-Letter-Subject"], "baton.cmd.ledger.debit")
        self.assertEqual(copied["Baton-Dead-Letter-Source"], "worker:ledger")
        self.assertEqual(copied["Baton-Step"], "debit-sender")


if __name__ == "__main__":
    unittest.main()
