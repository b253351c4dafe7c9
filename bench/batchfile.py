"""Batch files (issue #16): a 100,000-line JSON Lines file through POST /v1/batches, beside the
same 100,000 jobs as POST /v1/inference/batch calls of 1000 items, in the same run.

`python -m bench.batchfile [--jobs N] [--rounds R] [--consumers C] [--json PATH]`

Against the real processes (projector, consumers, API; bench.stack), one client, one
keep-alive connection, as a user uploading a file would:

- file: the file built beforehand, sent as one request in 64 KiB pieces (chunked), timed to its
  202, then until every job is terminal;
- reference: the same jobs (texts and custom_ids) as 1000-item JSON batches, bodies encoded
  beforehand, sent one after another, timed to the last 202, then until every job is terminal.

"All terminal" is when the projection holds every job terminal (what a reader sees): the bench
polls PostgreSQL every POLL_S (whether a projected job is unfinished, then the count of
terminal jobs), then takes the projector's last
commit (its checkpoints' updated_at) as the moment; the last outcome's own time (max
finished_at, in the log) is given too. CPU is read from /proc per
role for the acceptance (to the 202s) and for the whole run, per job; the API's peak resident
memory (VmHWM) after each kind says what the request held. The kinds alternate over the rounds
so that neither always runs on the warmer stack.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

from bench import cpu, machine
from bench.checkpoint import plain_url
from bench.memory import PROC
from bench.report import Section, write_json
from bench.stack import Stack, running_stack
from devstack.servers import postgres_server, redis_server
from eventlog.connection import is_cluster

JOBS = 100_000
ITEMS = 1000  # per JSON batch, the reference
PIECE_BYTES = 64 * 1024  # the file's pieces on the wire
POLL_S = 0.5
TEXTS = (
    "limited time offer, click now to claim your prize",
    "see you at seven for dinner, bring the wine",
    "your invoice for november is attached, thanks",
    "urgent: verify your account or it will be closed",
)
TERMINAL = ["succeeded", "failed", "cancelled"]


def lines_of(jobs: int, run: str) -> list[dict[str, str]]:
    """The jobs of one run: distinct texts (nothing is deduplicated) and custom_ids."""
    return [
        {"custom_id": f"{run}-{i}", "text": f"{TEXTS[i % len(TEXTS)]} ({run} {i})"}
        for i in range(jobs)
    ]


def file_of(lines: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def batch_bodies(lines: list[dict[str, str]]) -> list[bytes]:
    return [
        json.dumps({"items": lines[i : i + ITEMS]}).encode() for i in range(0, len(lines), ITEMS)
    ]


@dataclass
class Run:
    kind: str  # "file" or "reference"
    jobs: int
    accepted: int = 0
    accept_s: float = 0.0  # to the (last) 202
    terminal_s: float = 0.0  # to every job terminal in the projection (within POLL_S)
    last_outcome_s: float = 0.0  # to the last job's finished_at
    cpu_accept_s: dict[str, float] = field(default_factory=dict)
    cpu_all_s: dict[str, float] = field(default_factory=dict)
    api_peak_mb: float = 0.0
    # The file's batch, finished: GET /v1/batches/{id} (median of READS) and its results.
    read_s: float = 0.0
    results_s: float = 0.0
    results_bytes: int = 0
    results_api_cpu_s: float = 0.0

    def per_job_ms(self, seconds: dict[str, float]) -> dict[str, float]:
        return {role: s / self.jobs * 1000 for role, s in sorted(seconds.items())}


def _servers(stack: Stack) -> cpu.Servers:
    redis_url = stack.env["REDIS_URL"]
    return cpu.Servers.of(redis_url, is_cluster(redis_url), stack.env["DATABASE_URL"])


def _roles(stack: Stack) -> list[tuple[str, int]]:
    return [
        ("consumers" if name.startswith("consumer") else name, proc.pid)
        for name, proc in stack.procs.items()
        if proc.poll() is None
    ]


def peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Terminal:
    """Counts the projection's terminal jobs, straight from PostgreSQL (the stack's database)."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(plain_url(database_url), autocommit=True)

    def count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM jobs WHERE status = ANY(%s)", (TERMINAL,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _unfinished(self) -> bool:
        # Stops at the first such row of the status index: cheap, where counting every
        # terminal row each poll would cost the database a share of the run it measures.
        row = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'started'))"
        ).fetchone()
        return bool(row and row[0])

    def wait_for(self, total: int, limit_s: float) -> None:
        """Until `total` jobs are terminal: counted only once no projected job is unfinished (a
        projector behind the consumers makes most jobs queued and terminal in one commit)."""
        deadline = time.monotonic() + limit_s
        while self._unfinished() or self.count() < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count()} of {total} jobs terminal after {limit_s} s")
            time.sleep(POLL_S)

    def last_finished(self) -> datetime:
        """When the last job ended (its outcome's time)."""
        return self._one("SELECT max(finished_at) FROM jobs")

    def last_projected(self) -> datetime:
        """When the projector last committed: once every job is terminal and nothing else is
        submitted, when the projection first held them all."""
        return self._one("SELECT max(updated_at) FROM projector_checkpoints WHERE name = 'jobs'")

    def _one(self, query: str) -> datetime:
        row = self._conn.execute(query).fetchone()
        assert row is not None and row[0] is not None
        return row[0]  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.close()


def _pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), PIECE_BYTES):
        yield body[start : start + PIECE_BYTES]


def send_file(client: httpx.Client, body: bytes) -> tuple[str, int]:
    """The batch the file became, and its jobs accepted."""
    headers = {"Content-Type": "application/x-ndjson"}
    response = client.post("/v1/batches", content=_pieces(body), headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"file refused: {response.status_code} {response.text[:500]}")
    answer = response.json()
    return answer["batch_id"], int(answer["accepted"])


def send_batches(client: httpx.Client, bodies: list[bytes]) -> int:
    accepted = 0
    headers = {"Content-Type": "application/json"}
    for body in bodies:
        response = client.post("/v1/inference/batch", content=body, headers=headers)
        if response.status_code != 202:
            raise RuntimeError(f"batch refused: {response.status_code} {response.text[:500]}")
        accepted += int(response.json()["accepted"])
    return accepted


def measure(stack: Stack, terminal: Terminal, kind: str, jobs: int, done_before: int) -> Run:
    lines = lines_of(jobs, f"{kind}-{uuid.uuid4().hex[:6]}")
    payload: bytes | list[bytes] = file_of(lines) if kind == "file" else batch_bodies(lines)
    run = Run(kind, jobs)
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=600) as client:
        client.get("/health")  # the connection, before the clock starts
        began_at, wall = time.monotonic(), time.time()
        before = cpu.sample(_roles(stack), _servers(stack))
        batch_id = ""
        if isinstance(payload, bytes):
            batch_id, run.accepted = send_file(client, payload)
        else:
            run.accepted = send_batches(client, payload)
        run.accept_s = time.monotonic() - began_at
        accepted = cpu.sample(_roles(stack), _servers(stack))
        terminal.wait_for(done_before + run.accepted, 120 + jobs / 100)
        run.cpu_accept_s = cpu.spent(before, accepted)
        run.cpu_all_s = cpu.spent(before, cpu.sample(_roles(stack), _servers(stack)))
        if batch_id:
            read_back(stack, client, batch_id, run)
    run.terminal_s = terminal.last_projected().timestamp() - wall
    run.last_outcome_s = terminal.last_finished().timestamp() - wall
    run.api_peak_mb = peak_mb(stack.procs["api"].pid)
    return run


READS = 21


def read_back(stack: Stack, client: httpx.Client, batch_id: str, run: Run) -> None:
    """The finished batch read as a user would: its counts, then its whole results file."""
    times = []
    for _ in range(READS):
        began_at = time.monotonic()
        client.get(f"/v1/batches/{batch_id}").raise_for_status()
        times.append(time.monotonic() - began_at)
    run.read_s = sorted(times)[READS // 2]
    before = cpu.sample(_roles(stack), _servers(stack))
    began_at = time.monotonic()
    with client.stream("GET", f"/v1/batches/{batch_id}/results") as response:
        response.raise_for_status()
        run.results_bytes = sum(len(piece) for piece in response.iter_bytes())
    run.results_s = time.monotonic() - began_at
    run.results_api_cpu_s = cpu.spent(before, cpu.sample(_roles(stack), _servers(stack))).get(
        "api", 0.0
    )


def warm_up(stack: Stack, terminal: Terminal) -> int:
    """A small file and a small batch first: connections, the model, the first queries."""
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client:
        lines = lines_of(2 * ITEMS, f"warm-{uuid.uuid4().hex[:6]}")
        _batch_id, jobs = send_file(client, file_of(lines[:ITEMS]))
        jobs += send_batches(client, batch_bodies(lines[ITEMS:]))
    terminal.wait_for(jobs, 60)
    return jobs


def batchfile(
    work: Path,
    jobs: int = JOBS,
    rounds: int = 1,
    consumers: int = 2,
    api_workers: int = 1,
    env: dict[str, str] | None = None,
) -> Section:
    runs: list[Run] = []
    with running_stack(work, consumers, api_workers, env=env) as stack:
        terminal = Terminal(stack.env["DATABASE_URL"])
        try:
            done = warm_up(stack, terminal)
            for round_ in range(rounds):
                kinds = ("file", "reference") if round_ % 2 == 0 else ("reference", "file")
                for kind in kinds:
                    run = measure(stack, terminal, kind, jobs, done)
                    done += run.accepted
                    runs.append(run)
                    print(f"  {kind}: {_summary(run)}", flush=True)
        finally:
            terminal.close()
    return _section(runs, jobs, consumers)


def _summary(run: Run) -> str:
    api_ms = run.cpu_accept_s.get("api", 0.0) / run.jobs * 1000
    return (
        f"202 in {run.accept_s:.2f} s ({run.jobs / run.accept_s:.0f} jobs/s accepted), all "
        f"terminal in {run.terminal_s:.2f} s ({run.jobs / run.terminal_s:.0f} jobs/s; last "
        f"outcome at {run.last_outcome_s:.2f} s), API CPU {api_ms * 1000:.0f} us/job accepting"
    )


def _section(runs: list[Run], jobs: int, consumers: int) -> Section:
    section = Section(
        f"batchfile: {jobs} jobs as one JSON Lines file vs {jobs // ITEMS} JSON batches of "
        f"{ITEMS}, one client, {consumers} consumers",
        "batchfile",
    )
    section.data.update(jobs=jobs, items_per_batch=ITEMS, runs=[])
    for run in runs:
        accept_ms = run.per_job_ms(run.cpu_accept_s)
        all_ms = run.per_job_ms(run.cpu_all_s)
        section.row(run.kind, _summary(run))
        section.row(
            f"{run.kind} CPU per job",
            "accepting: "
            + ", ".join(f"{role} {v * 1000:.0f} us" for role, v in accept_ms.items())
            + "; to all terminal: "
            + ", ".join(f"{role} {v * 1000:.0f} us" for role, v in all_ms.items())
            + f"; API peak RSS {run.api_peak_mb:.0f} MB",
        )
        if run.results_bytes:
            section.row(
                f"{run.kind} read back",
                f"GET /v1/batches/{{id}} {run.read_s * 1000:.1f} ms (median); results "
                f"{run.results_bytes / 2**20:.1f} MiB in {run.results_s:.2f} s "
                f"({run.jobs / run.results_s:.0f} lines/s), API CPU "
                f"{run.results_api_cpu_s / run.jobs * 1e6:.0f} us/line",
            )
        section.data["runs"].append(
            {
                "kind": run.kind,
                "accepted": run.accepted,
                "accept_s": run.accept_s,
                "accept_rate": run.jobs / run.accept_s,
                "terminal_s": run.terminal_s,
                "end_to_end_rate": run.jobs / run.terminal_s,
                "last_outcome_s": run.last_outcome_s,
                "cpu_ms_per_job_accepting": accept_ms,
                "cpu_ms_per_job_all": all_ms,
                "api_peak_rss_mb": run.api_peak_mb,
                "read_ms": run.read_s * 1000,
                "results_s": run.results_s,
                "results_bytes": run.results_bytes,
                "results_api_cpu_us_per_line": run.results_api_cpu_s / run.jobs * 1e6,
            }
        )
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batchfile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--jobs", type=int, default=JOBS, help="lines of the file (default %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="file and reference, alternating")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    on_servers(
        "batchfile",
        lambda work: batchfile(work, args.jobs, args.rounds, args.consumers),
        args.json,
    )


def on_servers(name: str, run: Callable[[Path], Section], json_path: Path | None) -> None:
    """`run` in a work directory of its own, on the servers (REDIS_URL / DATABASE_URL, else
    embedded ones); its section printed, and written as JSON to `json_path` if given."""
    with (
        redis_server() as redis_url,
        postgres_server() as postgres_url,
        tempfile.TemporaryDirectory(prefix="inferflow-bench-") as tmp,
    ):
        # The stack finds these servers again instead of starting its own.
        os.environ.update(REDIS_URL=redis_url, DATABASE_URL=postgres_url)
        described = machine.describe(redis_url, postgres_url)
        print(f"# {name}: {described['cores']} cores, {described['cpu']}", flush=True)
        section = run(Path(tmp))
        section.print()
        if json_path:
            write_json(json_path, described, [section])
            print(f"\nresults written to {json_path}")


if __name__ == "__main__":
    main()
