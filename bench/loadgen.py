"""Load processes: each runs one `Plan` on uvloop; they start together and their tallies merge.

One Python process drives only so many requests per second, so a run can be spread over several.
Each is a fresh `python -m bench.loadgen` (small imports, nothing inherited from the parent):
it reads its pickled plan on stdin, opens its connections, says `ready`, waits for `go`, runs,
and writes its pickled tally on stdout.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import replace

import uvloop

from bench.clients import Plan, run_clients
from bench.http import Connection
from bench.tally import Tally, merged

READY, GO = b"ready\n", b"go\n"


def split(plan: Plan, processes: int) -> list[Plan]:
    """The plan spread over `processes` processes, clients and numbers shared out evenly."""
    processes = max(1, min(processes, plan.clients))
    return [
        replace(
            plan, clients=_share(plan.clients, p, processes), numbers=_numbers(plan, p, processes)
        )
        for p in range(processes)
    ]


def _share(count: int, part: int, parts: int) -> int:
    return count // parts + (part < count % parts)


def _numbers(plan: Plan, part: int, parts: int) -> range:
    if plan.kind != "batch":
        return plan.numbers[part::parts]
    # Whole batches, in one block per process, so that every batch but the last is full.
    numbers, size = plan.numbers, plan.batch_size
    batches = -(-len(numbers) // size)
    first, last = part * batches // parts, (part + 1) * batches // parts
    return numbers[first * size : last * size]


def run(plan: Plan, processes: int = 1) -> Tally:
    """Run the plan in `processes` load processes that start at the same moment."""
    children = [_spawn(part) for part in split(plan, processes)]
    try:
        for child in children:
            _expect(child, READY)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(GO)
            child.stdin.flush()
        return merged([_result(child) for child in children])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()


def _spawn(plan: Plan) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None
    child.stdin.write(pickle.dumps(plan))
    child.stdin.flush()
    return child


def _expect(child: subprocess.Popen[bytes], line: bytes) -> None:
    assert child.stdout is not None
    got = child.stdout.readline()
    if got != line:
        raise RuntimeError(f"load process said {got!r}, expected {line!r}")


def _result(child: subprocess.Popen[bytes]) -> Tally:
    assert child.stdout is not None
    tally = pickle.loads(child.stdout.read())
    if not isinstance(tally, Tally):
        raise RuntimeError("load process sent no tally")
    return tally


async def _serve(plan: Plan) -> Tally:
    conns = [Connection.to(plan.url, plan.timeout_s) for _ in range(plan.clients)]
    for conn in conns:
        await conn.open()
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    if sys.stdin.buffer.readline() != GO:  # blocking is fine: nothing else runs yet
        raise SystemExit("no go")
    tally = Tally(began_at=time.time())
    cpu = time.process_time()
    await run_clients(plan, conns, tally)
    tally.ended_at = time.time()
    tally.cpu_s = time.process_time() - cpu
    for conn in conns:
        conn.close()
    return tally


def main() -> None:
    plan = pickle.load(sys.stdin.buffer)  # reads the pickle only: `go` follows on the same pipe
    tally = uvloop.run(_serve(plan))
    _write_all(sys.stdout.fileno(), pickle.dumps(tally))


def _write_all(fd: int, data: bytes) -> None:
    # After uvloop has run, a write to a full pipe can return early (seen: 64 KiB of a larger
    # tally while the parent was reading another process's), and file objects do not resume it.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
