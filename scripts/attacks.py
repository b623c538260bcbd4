#!/usr/bin/env python3
"""The attacks of issue 14, sent to a running `baton serve` (without credentials, on loopback).

Each must be answered with a 4xx (or 503) application/problem+json that says what is wrong, or,
for slow and idle connections, be closed by the server; afterwards the process must still answer
/healthz and its resident memory must stay under 150 MB. Standard library only.

    scripts/attacks.py PORT PID
"""
import http.client
import json
import socket
import sys
import time
import urllib.error
import urllib.request

PORT, PID = int(sys.argv[1]), int(sys.argv[2])
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))
    if not condition:
        failures.append(name)


def request(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    data = body.encode() if isinstance(body, str) else body
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), payload


def problem(name, method, path, status, mention, body=None, content_type="application/json", headers=None):
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", content_type)
    got, response_headers, payload = request(method, path, body, headers)
    try:
        detail = json.loads(payload).get("detail", "")
    except ValueError:
        detail = payload[:200]
    check(
        name,
        got == status and response_headers.get("Content-Type") == "application/problem+json" and mention in detail,
        f"{got} {response_headers.get('Content-Type')} {detail!r}",
    )


def rss_kilobytes(field):
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def definition(extra_step="", extra_workflow="", steps=None):
    steps = steps or f"  - name: debit\n    participant: ledger\n    action: debit\n    timeout: 1s\n{extra_step}"
    return f"name: attack\nversion: 1\n{extra_workflow}\nsteps:\n{steps}"


# Crashes.
problem("retry.initial of 50000000000d", "POST", "/v1/workflows", 422, "maximum of 365d",
        definition("    retry: { initial: 50000000000d }"), "application/yaml")
problem("deadline of 50000000000d", "POST", "/v1/workflows", 422, "maximum of 365d",
        definition(extra_workflow="deadline: 50000000000d"), "application/yaml")
problem("stuck=running:50000000000d", "GET", "/v1/sagas?stuck=running:50000000000d", 400, "maximum of 365d")
problem("stuck=awaiting:50000000000d", "GET", "/v1/sagas?stuck=awaiting:50000000000d", 400, "maximum of 365d")

# Denial of service: an alias bomb, twice at once in spirit (one after the other here).
bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
for level, name in enumerate("bcdef"):
    previous = "abcdef"[level]
    bomb += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
for attempt in range(2):
    problem(f"YAML alias bomb {attempt + 1}", "POST", "/v1/workflows", 422, "anchors and aliases", bomb, "application/yaml")

# Slow headers, slow bodies and idle sockets: /healthz keeps answering, and the server closes them.
held = []
for index in range(200):
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.sendall(b"POST /v1/sagas HTTP/1.1\r\nHost: x\r\n" if index % 2 == 0 else
                 b"POST /v1/sagas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    held.append(sock)
for _ in range(300):
    held.append(socket.create_connection(("127.0.0.1", PORT)))
started = time.monotonic()
status, _, _ = request("GET", "/healthz")
check("/healthz with 500 slow or idle connections open", status == 200 and time.monotonic() - started < 5,
      f"{status} after {time.monotonic() - started:.1f}s")
deadline = time.monotonic() + 20
closed = 0
for sock in held:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        closed += sock.recv(1) == b""
    except (ConnectionResetError, socket.timeout, OSError):
        closed += isinstance(sys.exc_info()[1], ConnectionResetError)
    sock.close()
check("slow and idle connections are closed by the server", closed == len(held), f"{closed} of {len(held)} closed")

# An over-limit body with Connection: close, from a client that writes all of it before reading.
over = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/sagas", data=b"{" + b" " * (2 << 20) + b"}", method="POST",
                              headers={"Content-Type": "application/json", "Connection": "close"})
try:
    urllib.request.urlopen(over, timeout=30)
    check("an over-limit body gets a 413 the client reads", False, "accepted")
except urllib.error.HTTPError as error:
    check("an over-limit body gets a 413 the client reads", error.code == 413, f"{error.code}")
except OSError as error:
    check("an over-limit body gets a 413 the client reads", False, f"{error!r}")

# Server errors for client mistakes.
problem("?workflow=%00", "GET", "/v1/sagas?workflow=%00", 400, "workflow must be a workflow name")
status, _, payload = request("POST", "/v1/sagas", json.dumps({"workflow": "funds-transfer", "input": {
    "transfer_id": "attack-1", "from_account": "alice", "to_account": "bob", "amount": 1, "currency": "EUR"}}),
    {"Content-Type": "application/json"})
saga = json.loads(payload).get("id", "none")
problem("a cancel reason holding NUL", "POST", f"/v1/sagas/{saga}/cancel", 422, "NUL", '{"reason": "a\\u0000b"}')
# Signals: a saga of a workflow that waits for one, and what a caller may send it.
request("POST", "/v1/workflows", "name: attack-signal\nversion: 1\nsteps:\n  - {name: wait, signal: go, timeout: 1m}\n",
        {"Content-Type": "application/yaml"})
status, _, payload = request("POST", "/v1/sagas", '{"workflow": "attack-signal", "input": {}}', {"Content-Type": "application/json"})
waiting = json.loads(payload).get("id", "none")
problem("a signal payload holding NUL", "POST", f"/v1/sagas/{waiting}/signals/go", 422, "NUL", '{"payload": "a\\u0000b"}')
problem("a signal name with a dot", "POST", f"/v1/sagas/{waiting}/signals/a.b", 400, "not a signal name", "{}")
problem("a 1,000-character signal name", "POST", f"/v1/sagas/{waiting}/signals/{'s' * 1000}", 400, "not a signal name", "{}")
problem("a signal with an unknown member", "POST", f"/v1/sagas/{waiting}/signals/go", 400, "unknown member", '{"paylod": 1}')
problem("a failed signal without a code", "POST", f"/v1/sagas/{waiting}/signals/go", 400, "code", '{"failed": {}}')
problem("a 300-character signal Idempotency-Key", "POST", f"/v1/sagas/{waiting}/signals/go", 400, "Idempotency-Key", "{}",
        headers={"Idempotency-Key": "k" * 300})
problem("a signal no step waits for", "POST", f"/v1/sagas/{saga}/signals/go", 409, "no step that waits", "{}")
import base64
cursor = base64.urlsafe_b64encode(b"v1:9223372036854775807:0190f5a4-7b1c-7d2e-8f00-000000000000").decode().rstrip("=")
problem("a cursor holding int64 max", "GET", f"/v1/sagas?cursor={cursor}", 400, "cursor")
sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
sock.sendall(b"POST /v1/sagas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
answer = b""
try:
    while chunk := sock.recv(4096):
        answer += chunk
except OSError:
    pass
sock.close()
check("a bad chunk size", answer.startswith(b"HTTP/1.1 400"), answer[:80])

# Loose input.
problem("an integer beyond int64", "POST", "/v1/sagas", 422, "beyond the 64-bit range",
        '{"workflow": "funds-transfer", "input": {"amount": 123456789012345678901234567890}}')
# A float far beyond the int64 range is a float: jsonb gives it back in plain digits, and the saga
# must still read back (it once could not, and every later request for it was a 500).
status, _, payload = request("POST", "/v1/sagas", '{"workflow": "attack-signal", "input": {"x": 2.3968352471166776e+232, "y": 1e20}}',
                             {"Content-Type": "application/json"})
huge = json.loads(payload).get("id", "none")
status, _, payload = request("GET", f"/v1/sagas/{huge}")
check("a saga with a float beyond int64 reads back", status == 200 and json.loads(payload).get("input", {}).get("y") == 1e20,
      f"{status} {payload[:200]}")
problem("a duplicate key", "POST", "/v1/sagas", 422, "appears twice",
        '{"workflow": "funds-transfer", "workflow": "wallet-topup", "input": {}}')
many = "".join(f"  - name: s{index}\n    participant: p\n    action: a\n" for index in range(10_000))
problem("a 10,000-step definition (over the byte limit first)", "POST", "/v1/workflows", 422, "limited to 262144 bytes",
        definition(steps=many), "application/yaml")
some = "".join(f"  - {{name: s{index}, participant: p, action: a}}\n" for index in range(150))
problem("a 150-step definition", "POST", "/v1/workflows", 422, "at most 100", definition(steps=some), "application/yaml")
problem("a 1,000-character name", "POST", "/v1/workflows", 422, "at most 64",
        definition().replace("name: attack", "name: " + "n" * 1000), "application/yaml")
problem("a 10,000-character X-Correlation-ID", "GET", "/v1/sagas", 400, "X-Correlation-ID",
        headers={"X-Correlation-ID": "c" * 10_000})

# Who may do what, and HTTP.
problem("text/plain registration (no CORS preflight)", "POST", "/v1/workflows", 415, "application/yaml", definition(), "text/plain")
problem("text/plain submission", "POST", "/v1/sagas", 415, "application/json", '{"workflow": "funds-transfer"}', "text/plain")
for method in ["HEAD", "OPTIONS", "DELETE"]:
    status, headers, _ = request(method, "/v1/sagas")
    check(f"{method} on /v1/sagas", status == 405 and headers.get("Allow") == "GET, POST", f"{status} {headers.get('Allow')}")
status, headers, _ = request("GET", "/v1/sagas", headers={"Origin": "https://evil.example"})
check("no CORS headers for another origin", "Access-Control-Allow-Origin" not in headers, headers)

# The web console (/ui): a page that says what is wrong, never a 500, never a reflected script.
def page(name, method, path, status, mention, body=None, headers=None):
    got, answer_headers, payload = request(method, path, body, headers)
    text = payload.decode(errors="replace")
    check(f"console: {name}", got == status and mention in text and "<script>alert" not in text,
          f"{got} {answer_headers.get('Content-Type')} {text[:200]}")


form = {"Content-Type": "application/x-www-form-urlencoded"}
page("a status with a script", "GET", "/ui/sagas?status=%3Cscript%3Ealert(1)%3C/script%3E", 400, "&lt;script&gt;")
page("a search with a script", "GET", "/ui/sagas?q=%3Cscript%3Ealert(1)%3C/script%3E", 200, "&lt;script&gt;")
page("a search holding NUL", "GET", "/ui/sagas?q=a%00b", 400, "at most 255 characters")
page("a 10,000-character search", "GET", "/ui/sagas?q=" + "x" * 10000, 400, "at most 255 characters")
page("a forged cursor", "GET", "/ui/sagas?cursor=AAAA", 400, "no longer valid")
page("a month that is none", "GET", "/ui/sagas?created_after=2026-13-45T00:00", 400, "must be a time")
page("a version beyond int64", "GET", "/ui/workflows/funds-transfer?version=99999999999999999999", 200, "funds-transfer")
page("an unknown saga", "GET", "/ui/sagas/not-a-saga", 404, "no saga with id")
page("a form as JSON", "POST", f"/ui/sagas/{saga}/cancel", 415, "x-www-form-urlencoded", '{"reason": "x"}',
     {"Content-Type": "application/json"})
page("an over-limit form", "POST", f"/ui/sagas/{saga}/actions", 413, "", "reason=" + "x" * (1 << 20), form)
page("a form from another site", "POST", f"/ui/sagas/{saga}/cancel", 403, "own pages", "reason=x&confirm=yes",
     {**form, "Origin": "https://evil.example"})
page("a signal payload that is not JSON", "POST", f"/ui/sagas/{waiting}/signals", 400, "not JSON",
     "signal=go&outcome=payload&payload=%7B&reason=x&confirm=yes", form)
page("broken percent-encoding", "POST", f"/ui/sagas/{saga}/actions", 400, "unknown action", "action=%ZZ&reason=%&confirm=yes", form)
page("a sign-in with a 20,000-byte token", "POST", "/ui/login", 413, "", "token=" + "t" * 20000, form)
page("a sign-in with a token a cookie cannot hold", "POST", "/ui/login", 401, "not valid", "token=a%3Bb%0D%0ASet-Cookie%3A+x", form)

status, _, _ = request("GET", "/healthz")
check("the process is still up", status == 200, status)
rss, peak = rss_kilobytes("VmRSS"), rss_kilobytes("VmHWM")
check(f"resident memory {rss // 1024} MB (peak {peak // 1024} MB) under 150 MB", rss < 150 * 1024, f"{rss} kB")
print(f"{len(failures)} failed" if failures else "every attack answered")
sys.exit(1 if failures else 0)
