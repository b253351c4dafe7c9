"""Load processes: each runs one `Plan` on uvloop; they start together and their tallies merge.

One Python process drives only so many requests per second, so a run can be spread over several.
Each is a fresh `python -m bench.loadgen` (small imports, nothing inherited from the parent):
it reads its pickled plan on stdin, opens its connections, says `ready`, waits for `go`, runs,
and writes its pickled tally on stdout. A `stop` on stdin while it runs ends it early: each
client finishes the request it is in and starts no other (`start` and `Running.stop`: load that
goes on beside another run for as long as that one lasts).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace

import uvloop

from bench.clients import Plan, run_clients
from bench.http import Connection
from bench.tally import Tally, merged

READY, GO, STOP = b"ready\n", b"go\n", b"stop\n"


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
    return start(plan, processes).result()


@dataclass
class Running:
    """Load processes, ready (connected) and, after `go`, running; their tallies are read as
    they come."""

    children: list[subprocess.Popen[bytes]]
    _outputs: list[bytes] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def go(self) -> Running:
        """Tell every process to start (they start at the same moment)."""
        try:
            for child in self.children:
                assert child.stdin is not None
                child.stdin.write(GO)
                child.stdin.flush()
        except BaseException:
            _end(self.children)
            raise
        # Read as they write: a tally larger than a pipe's buffer would block its process.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for child in self.children:
            assert child.stdout is not None
            self._outputs.append(child.stdout.read())

    def done(self) -> bool:
        """Whether every process has finished its plan (or stopped) and sent its tally."""
        return self._reader is not None and not self._reader.is_alive()

    def stop(self) -> None:
        """Tell every process to stop: each client ends the request it is in, then the process
        sends its tally."""
        for child in self.children:
            try:
                assert child.stdin is not None
                child.stdin.write(STOP)
                child.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # done already

    def end(self) -> None:
        """Kill whatever still runs (after a failure: the tallies are lost)."""
        _end(self.children)

    def result(self) -> Tally:
        """The merged tally, once every process has sent its own."""
        try:
            if self._reader is None:
                raise RuntimeError("the load was never told to go")
            self._reader.join()
            return merged([_tally(output) for output in self._outputs])
        finally:
            _end(self.children)


def prepare(plan: Plan, processes: int = 1) -> Running:
    """The plan's `processes` load processes, connected and waiting for `go`."""
    children = [_spawn(part) for part in split(plan, processes)]
    try:
        for child in children:
            _expect(child, READY)
    except BaseException:
        _end(children)
        raise
    return Running(children)


def start(plan: Plan, processes: int = 1) -> Running:
    """Start the plan in `processes` load processes at the same moment; returns at once."""
    return prepare(plan, processes).go()


def _end(children: list[subprocess.Popen[bytes]]) -> None:
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


def _tally(output: bytes) -> Tally:
    try:
        tally = pickle.loads(output)
    except (pickle.UnpicklingError, EOFError):
        tally = None
    if not isinstance(tally, Tally):
        raise RuntimeError("load process sent no tally")
    return tally


async def _serve(plan: Plan) -> Tally:
    conns = [Connection.to(plan.url, plan.timeout_s, plan.headers) for _ in range(plan.clients)]
    for conn in conns:
        await conn.open()
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    if _line() != GO:  # blocking is fine: nothing else runs yet
        raise SystemExit("no go")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_await_stop, args=(loop, stop), daemon=True).start()
    tally = Tally(began_at=time.time())
    cpu = time.process_time()
    await run_clients(plan, conns, tally, stop)
    tally.ended_at = time.time()
    tally.cpu_s = time.process_time() - cpu
    for conn in conns:
        conn.close()
    return tally


def _line() -> bytes:
    """One line of stdin, read straight from the descriptor ("" at its end). Not through
    sys.stdin: a thread blocked in a buffered read holds the buffer's lock, which the
    interpreter's shutdown then cannot take (a fatal error), and a buffered read could take
    `stop` along with `go`."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        data += byte
    return data


def _await_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set `stop` when the parent says so (its end of stdin closing says nothing)."""
    while line := _line():
        if line == STOP:
            loop.call_soon_threadsafe(stop.set)
            return


def main() -> None:
    # Reads the pickle only (the parent sends nothing else before `ready`): `go` and `stop`
    # follow on the same pipe, for _line.
    plan = pickle.load(sys.stdin.buffer)
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
