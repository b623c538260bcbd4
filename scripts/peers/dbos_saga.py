"""baton-bench's peer: the benchmark's saga in DBOS Transact, on the same PostgreSQL.

The same shape as Baton's `bench-3` workflow: three no-op steps, each with a compensation; a saga
whose input says `fail` fails at its last step, and the two steps before it are compensated in
reverse order. DBOS runs steps in-process (no broker, no participants), checkpointing each step's
result in its system database, so this is the cost of durable execution in its leanest form.

Run by `baton-bench run` (docs/performance.md), which reads the JSON it prints on its last line:

    python dbos_saga.py --database-url postgres://... --count 2000 --concurrency 32 --fail-every 10

Phases: a warm-up, `empty` (no failures) and `failing-mix` (every Nth saga fails). Each phase
reports sagas, steps, wall seconds, latency percentiles (one saga's workflow call, start to end),
and CPU seconds of this process and of every PostgreSQL process (exited backends included), read
from /proc as baton-bench reads its own parts.
"""

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig


class StepFailed(Exception):
    """The last step's business failure, asked for by the input."""


@DBOS.step()
def run_step(name: str, n: int, fail: bool) -> dict:
    if fail:
        raise StepFailed(f"step {name} asked to fail")
    return {}


@DBOS.step()
def undo_step(name: str, n: int) -> dict:
    return {}


@DBOS.workflow()
def bench_saga(n: int, fail: bool) -> str:
    done = []
    try:
        for name in ("a", "b", "c"):
            run_step(name, n, fail and name == "c")
            done.append(name)
        return "COMPLETED"
    except StepFailed:
        for name in reversed(done):
            undo_step(name, n)
        return "FAILED"


TICKS = os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if not comm.read().startswith("postgres"):
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            # utime, stime, and the reaped children's cutime and cstime: backends that exit
            # land in the postmaster's, so the sum never drops.
            total += sum(int(field) for field in fields[11:15]) / TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


def percentile(sorted_values, fraction):
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_phase(name: str, count: int, concurrency: int, fail_every: int, offset: int) -> dict:
    latencies = []
    outcomes = {"COMPLETED": 0, "FAILED": 0}
    lock = threading.Lock()

    def one(index: int) -> None:
        fail = fail_every > 0 and index % fail_every == 0
        start = time.perf_counter()
        outcome = bench_saga(offset + index, fail)
        took = time.perf_counter() - start
        with lock:
            latencies.append(took * 1000)
            outcomes[outcome] += 1

    postgres_before = postgres_cpu_seconds()
    self_before = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(one, index) for index in range(count)]:
            future.result()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "phase": name,
        "sagas": count,
        "completed": outcomes["COMPLETED"],
        "failed": outcomes["FAILED"],
        # As baton-bench counts legs: 3 per completed saga, 5 per compensated one.
        "steps": outcomes["COMPLETED"] * 3 + outcomes["FAILED"] * 5,
        "seconds": seconds,
        "latency_milliseconds": [percentile(latencies, p) for p in (0.5, 0.9, 0.99)],
        "cpu_seconds": {"dbos": time.process_time() - self_before, "postgres": postgres_cpu_seconds() - postgres_before},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="DBOS's system database (created if missing)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fail-every", type=int, default=10)
    arguments = parser.parse_args()

    config: DBOSConfig = {
        "name": "baton-bench-peer",
        "system_database_url": arguments.database_url,
        "sys_db_pool_size": arguments.concurrency + 8,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        run_phase("warmup", min(500, arguments.count), arguments.concurrency, 0, 0)
        phases = [
            run_phase("empty", arguments.count, arguments.concurrency, 0, 1_000_000),
            run_phase("failing-mix", arguments.count, arguments.concurrency, arguments.fail_every, 2_000_000),
        ]
    finally:
        DBOS.destroy()
    print(json.dumps(phases))


if __name__ == "__main__":
    main()
