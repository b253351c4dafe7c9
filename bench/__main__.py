"""`make bench`: load a whole InferFlow on this machine and report, with a reference limit.

Modes (all by default): `sequential` (the seed's bench.sh: one client, N jobs, submit then poll
to the end), `concurrent` (C clients doing the same), `accept` (C clients only submitting,
against the API and against the reference endpoint that only appends to a stream).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench import load, report
from bench.stack import running_stack
from tests.e2e.harness import Service, free_port


def _reference(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "REDIS_URL": redis_url},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.post(f"{url}/append", json={"text": "warm-up"}, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the reference endpoint did not start")


def _with_log(service: Service, run: load.Run) -> report.Outcomes:
    client = redis.Redis.from_url(service.env["REDIS_URL"], decode_responses=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            seen = report.log_outcomes(client, service.names, run.accepted)
            if seen.lost == 0 or time.monotonic() > deadline:
                return seen
            time.sleep(0.5)
    finally:
        client.close()


def _print_run(title: str, service: Service, run: load.Run) -> None:
    seen = _with_log(service, run)
    success = run.statuses.get("succeeded", 0) / max(len(run.accepted), 1)
    print(f"\n## {title}")
    print(
        f"success rate        {success:.1%} ({len(run.accepted)} accepted, {run.refused} refused)"
    )
    print(f"throughput          {len(run.terminal_s) / run.wall_s:.0f} jobs/s end to end")
    print(f"submit p50/95/99    {report.ms(run.submit_s)} ms")
    print(f"observed p50/95/99  {report.ms(run.terminal_s)} ms (client: submit to terminal seen)")
    print(f"log p50/95/99       {report.ms(seen.latency_s)} ms (JobRequested to outcome)")
    print(f"retry rate          {seen.retry_rate:.1%}")
    print(f"lost jobs           {seen.lost}")


def _accept(service: Service, ref_url: str, clients: int, total: int) -> None:
    ours = load.submit_only(service.url, "/v1/inference", clients, total)
    bare = load.submit_only(ref_url, "/append", clients, total)
    ours_rate, bare_rate = len(ours.accepted) / ours.wall_s, len(bare.accepted) / bare.wall_s
    print(f"\n## accept rate, {clients} clients, {total} submissions")
    print(f"reference (XADD only)  {bare_rate:.0f}/s  submit p50/95/99 {report.ms(bare.submit_s)}")
    print(f"InferFlow API          {ours_rate:.0f}/s  submit p50/95/99 {report.ms(ours.submit_s)}")
    print(f"ratio                  {ours_rate / bare_rate:.2f}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--mode", choices=("all", "sequential", "concurrent", "accept"), default="all"
    )
    parser.add_argument("-n", "--jobs", type=int, default=2000, help="jobs per concurrent run")
    parser.add_argument("--sequential-jobs", type=int, default=200)
    parser.add_argument("-c", "--clients", type=int, default=32)
    parser.add_argument("--consumers", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    args = _parse()
    print(f"# InferFlow bench: {os.cpu_count()} cores, {args.consumers} consumers")
    with (
        tempfile.TemporaryDirectory() as work,
        running_stack(Path(work), consumers=args.consumers) as service,
    ):
        if args.mode in ("all", "sequential"):
            run = load.submit_and_wait(service.url, 1, args.sequential_jobs)
            _print_run(f"sequential, {args.sequential_jobs} jobs", service, run)
        if args.mode in ("all", "concurrent"):
            run = load.submit_and_wait(service.url, args.clients, args.jobs)
            _print_run(f"concurrent, {args.clients} clients, {args.jobs} jobs", service, run)
        if args.mode in ("all", "accept"):
            proc, ref_url = _reference(service.env["REDIS_URL"])
            try:
                _accept(service, ref_url, args.clients, args.jobs)
            finally:
                proc.terminate()
                proc.wait()
        rss = {name: report.rss_mb(p.pid) for name, p in service.procs.items()}
        print("\nresident memory (MB): " + ", ".join(f"{n} {v:.0f}" for n, v in rss.items()))


if __name__ == "__main__":
    main()
