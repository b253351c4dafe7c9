"""`inferflow batch` (the client's command, issue #21) on a 100,000-line file, beside the batch
endpoint's own rate in the same run: the same kind of file sent raw as one POST /v1/batches,
without an Idempotency-Key and with one (the client always sends one: every line's job is then
bound to the key and its custom_id, one more record per job).

`python -m bench.clientbatch [--jobs N] [--consumers C] [--json PATH]`

Against the real processes (bench.stack). The references are bench.batchfile's "file" run (the
file built beforehand, one request, timed to its 202 and to every job terminal in the
projection) and the same with an Idempotency-Key. The client run is the command as a user runs
it (a process of its own, no progress bar): timed to its last part's 202 (its state file lists
every part), to every job terminal in the projection, and to its exit, when the output file
(one line per input line, in order) is whole. The client's CPU is the child's own (getrusage),
the service's is read per role.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import cpu
from bench.batchfile import (
    JOBS,
    Terminal,
    _pieces,
    _roles,
    _servers,
    file_of,
    lines_of,
    measure,
    on_servers,
    warm_up,
)
from bench.report import Section
from bench.stack import Stack, running_stack

INFERFLOW = str(Path(sys.executable).parent / "inferflow")
PART_LINES = 10_000  # the command's default


@dataclass
class Reference:
    accept_s: float
    terminal_s: float


def keyed_reference(stack: Stack, terminal: Terminal, jobs: int, done: int) -> Reference:
    """The file as one keyed POST /v1/batches: to its 202, and to every job terminal."""
    body = file_of(lines_of(jobs, f"keyed-{uuid.uuid4().hex[:6]}"))
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=600) as client:
        client.get("/health")
        began_at, wall = time.monotonic(), time.time()
        response = client.post("/v1/batches", content=_pieces(body), headers=headers)
        accept_s = time.monotonic() - began_at
    if response.status_code != 202:
        raise RuntimeError(f"file refused: {response.status_code} {response.text[:500]}")
    terminal.wait_for(done + jobs, 120 + jobs / 100)
    return Reference(accept_s, terminal.last_projected().timestamp() - wall)


@dataclass
class ClientRun:
    jobs: int
    sent_s: float = 0.0  # to the last part's 202
    terminal_s: float = 0.0  # to every job terminal in the projection
    exit_s: float = 0.0  # to the command's exit, the output whole
    client_cpu_s: float = 0.0
    service_cpu_s: dict[str, float] | None = None
    exit_code: int = 0
    output_lines: int = 0


def _parts_sent(state: Path) -> int:
    try:
        return len(json.loads(state.read_text())["parts"])
    except (OSError, ValueError):
        return 0


def run_client(stack: Stack, terminal: Terminal, work: Path, jobs: int, done: int) -> ClientRun:
    source, output = work / "client-in.jsonl", work / "client-out.jsonl"
    source.write_bytes(file_of(lines_of(jobs, f"client-{uuid.uuid4().hex[:6]}")))
    state = output.with_name(output.name + ".state")
    parts = -(-jobs // PART_LINES)
    env = {**os.environ, "INFERFLOW_URL": stack.url, "INFERFLOW_API_KEY": stack.api_key}
    args = [INFERFLOW, "batch", str(source), "-o", str(output), "--no-progress"]
    run = ClientRun(jobs)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu.sample(_roles(stack), _servers(stack))
    began_at, wall = time.monotonic(), time.time()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    while _parts_sent(state) < parts and process.poll() is None:
        time.sleep(0.02)
    run.sent_s = time.monotonic() - began_at
    run.exit_code = process.wait()
    run.exit_s = time.monotonic() - began_at
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.service_cpu_s = cpu.spent(before, cpu.sample(_roles(stack), _servers(stack)))
    run.client_cpu_s = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    terminal.wait_for(done + jobs, 120 + jobs / 100)
    run.terminal_s = terminal.last_projected().timestamp() - wall
    with output.open("rb") as lines:
        run.output_lines = sum(1 for _ in lines)
    return run


def clientbatch(work: Path, jobs: int = JOBS, consumers: int = 2) -> Section:
    with running_stack(work, consumers) as stack:
        terminal = Terminal(stack.env["DATABASE_URL"])
        try:
            done = warm_up(stack, terminal)
            unkeyed = measure(stack, terminal, "file", jobs, done)
            reference = Reference(unkeyed.accept_s, unkeyed.terminal_s)
            print(f"  endpoint: {jobs / reference.accept_s:.0f} jobs/s", flush=True)
            done += unkeyed.accepted
            keyed = keyed_reference(stack, terminal, jobs, done)
            print(f"  endpoint, keyed: {jobs / keyed.accept_s:.0f} jobs/s", flush=True)
            done += jobs
            client = run_client(stack, terminal, work, jobs, done)
            print(f"  client: {jobs / client.exit_s:.0f} jobs/s to its exit", flush=True)
        finally:
            terminal.close()
    return _section({"endpoint": reference, "endpoint, keyed": keyed}, client, jobs, consumers)


def _section(
    references: dict[str, Reference], client: ClientRun, jobs: int, consumers: int
) -> Section:
    section = Section(
        f"clientbatch: inferflow batch on a {jobs}-line file vs the file as one "
        f"POST /v1/batches, {consumers} consumers",
        "clientbatch",
    )
    for name, reference in references.items():
        section.row(
            name,
            f"202 in {reference.accept_s:.2f} s ({jobs / reference.accept_s:.0f} jobs/s), all "
            f"terminal in {reference.terminal_s:.2f} s ({jobs / reference.terminal_s:.0f} "
            "jobs/s)",
        )
    section.row(
        "inferflow batch",
        f"last 202 in {client.sent_s:.2f} s ({jobs / client.sent_s:.0f} jobs/s), all terminal "
        f"in {client.terminal_s:.2f} s ({jobs / client.terminal_s:.0f} jobs/s), output whole "
        f"at exit {client.exit_s:.2f} s ({jobs / client.exit_s:.0f} jobs/s); exit code "
        f"{client.exit_code}, {client.output_lines} output lines",
    )
    service = client.service_cpu_s or {}
    section.row(
        "CPU per job",
        f"client {client.client_cpu_s / jobs * 1e6:.0f} us ({client.client_cpu_s:.1f} s); "
        + ", ".join(f"{role} {s / jobs * 1e6:.0f} us" for role, s in sorted(service.items())),
    )
    section.data.update(
        jobs=jobs,
        part_lines=PART_LINES,
        references={
            name: {
                "accept_s": reference.accept_s,
                "terminal_s": reference.terminal_s,
                "accept_rate": jobs / reference.accept_s,
                "end_to_end_rate": jobs / reference.terminal_s,
            }
            for name, reference in references.items()
        },
        client={
            "sent_s": client.sent_s,
            "terminal_s": client.terminal_s,
            "exit_s": client.exit_s,
            "sent_rate": jobs / client.sent_s,
            "end_to_end_rate": jobs / client.terminal_s,
            "exit_rate": jobs / client.exit_s,
            "client_cpu_s": client.client_cpu_s,
            "service_cpu_s": service,
            "exit_code": client.exit_code,
            "output_lines": client.output_lines,
        },
    )
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clientbatch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=JOBS, help="lines (default %(default)s)")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    on_servers("clientbatch", lambda work: clientbatch(work, args.jobs, args.consumers), args.json)


if __name__ == "__main__":
    main()
