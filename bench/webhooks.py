"""Webhooks mode: deliveries per second, and the delay from a job's terminal event to its
webhook's arrival (p50/p95), under a steady offer of webhooks (1,000 a second by default).

A stack with notifiers (and private networks allowed) is given jobs with a `webhook`, in
batches of `BATCH` items sent at an even pace, so that `--webhook-rate` jobs a second ask for a
webhook. A receiver in a process of its own (a bare asyncio HTTP/1.1 server, so that it costs
the machine little) answers 204 and records when each message came and the job's `finished_at`
from its body, which is its terminal event's time: the delay needs no read of the log. The
deliveries per second are counted over the window from the first to the last arrival.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench.options import Options
from bench.report import Section, ms, quantiles_ms, rate
from bench.stack import running_stack

BATCH = 50
STALL_S = 60.0  # no new arrival for this long: report what came and stop

# When it came (Unix s), the path it was sent to, its webhook-id, its job's finished_at (Unix s).
Arrival = tuple[float, str, str, float]


def _finished_at(body: bytes) -> float:
    stamp = json.loads(body).get("finished_at")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


async def _serve(port_out: Connection, commands: Connection, replies: Connection) -> list[Arrival]:
    arrivals: list[Arrival] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                path = request_line.split(" ")[1] if " " in request_line else ""
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                webhook_id = headers.get("webhook-id", "")
                arrivals.append((time.time(), path, webhook_id, _finished_at(body)))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port_out.send(server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    # Commands: a path, answered with how many messages came to it; None, to stop.
    while (path := await loop.run_in_executor(None, commands.recv)) is not None:
        replies.send(len({a[2] for a in arrivals if a[1] == path}))
    server.close()
    return arrivals


def _receiver(port_out: Connection, commands: Connection, replies: Connection) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    replies.send(asyncio.run(_serve(port_out, commands, replies)))


@dataclass
class Receiver:
    """The receiver's process: its port, and its arrivals once stopped."""

    port: int
    _proc: Any
    _stop: Connection
    _results: Connection

    @classmethod
    def start(cls) -> Receiver:
        context = multiprocessing.get_context("spawn")
        port_in, port_out = context.Pipe(duplex=False)
        stop_in, stop_out = context.Pipe(duplex=False)
        results_in, results_out = context.Pipe(duplex=False)
        proc = context.Process(target=_receiver, args=(port_out, stop_in, results_out), daemon=True)
        proc.start()
        return cls(port_in.recv(), proc, stop_out, results_in)

    def count(self, path: str) -> int:
        """How many messages (by webhook-id) came to `path` so far."""
        self._stop.send(path)
        return int(self._results.recv())

    def wait_for(self, path: str, count: int) -> None:
        """Until `count` messages came to `path`, or none came for STALL_S."""
        seen, last_change = 0, time.monotonic()
        while seen < count and time.monotonic() - last_change < STALL_S:
            time.sleep(0.5)
            now = self.count(path)
            if now != seen:
                seen, last_change = now, time.monotonic()

    def stop(self) -> list[Arrival]:
        self._stop.send(None)
        arrivals: list[Arrival] = self._results.recv()
        self._proc.join(10)
        return arrivals


def _offer(url: str, headers: dict[str, str], hook: str, jobs: int, per_s: float) -> float:
    """Post `jobs` jobs with a webhook, `BATCH` a request, at `per_s` jobs a second; the
    seconds it took."""
    began = time.monotonic()
    items = [{"text": f"limited time offer number {i}", "webhook": hook} for i in range(BATCH)]
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for sent in range(0, jobs, BATCH):
            due = began + sent / per_s
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            chunk = items[: min(BATCH, jobs - sent)]
            response = client.post("/v1/inference/batch", json={"items": chunk})
            response.raise_for_status()
    return time.monotonic() - began


def webhooks(work: Path, o: Options) -> Section:
    receiver = Receiver.start()
    env = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", **o.env}
    offered_s = float("nan")
    try:
        with running_stack(work, o.consumers, o.api_workers, env=env) as stack:
            for i in range(o.notifiers):
                stack.start("notifier", f"notifier-{i}")
            base = f"http://127.0.0.1:{receiver.port}"
            if o.warmup:
                _offer(stack.url, stack.headers, f"{base}/warmup", o.warmup, o.webhook_rate)
                receiver.wait_for("/warmup", o.warmup)
            offered_s = _offer(
                stack.url, stack.headers, f"{base}/hooks", o.webhook_jobs, o.webhook_rate
            )
            receiver.wait_for("/hooks", o.webhook_jobs)
    finally:
        arrivals = receiver.stop()
    return _report([a for a in arrivals if a[1] == "/hooks"], o, offered_s)


def _report(arrivals: list[Arrival], o: Options, offered_s: float) -> Section:
    section = Section("webhooks: deliveries and delay from the terminal event", "webhooks")
    ids = {webhook_id for _, _, webhook_id, _ in arrivals}
    delays = [came - finished for came, _, _, finished in arrivals if finished]
    window = max(a[0] for a in arrivals) - min(a[0] for a in arrivals) if arrivals else 0.0
    achieved = rate(o.webhook_jobs, offered_s)
    section.row(
        "offered",
        f"{o.webhook_jobs} jobs with a webhook at {o.webhook_rate:g}/s ({achieved:.0f}/s "
        f"achieved), {o.notifiers} notifier(s)",
    )
    section.row("delivered", f"{len(ids)} messages ({len(arrivals) - len(ids)} sent again)")
    section.row("deliveries/s", f"{rate(len(arrivals), window):.0f}")
    section.row("terminal event -> delivery ms", f"{ms(delays)} (p50 / p95 / p99)")
    section.data = {
        "jobs": o.webhook_jobs,
        "offered_per_s": o.webhook_rate,
        "notifiers": o.notifiers,
        "delivered": len(ids),
        "duplicates": len(arrivals) - len(ids),
        "deliveries_per_s": rate(len(arrivals), window),
        "delay_ms": quantiles_ms(delays),
    }
    return section
