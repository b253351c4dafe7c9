"""The polling clients' accounting (`python -m bench --mode polling`), against a tiny HTTP server
in this process that answers a job queued for its first polls, then succeeded."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from bench.celeryref.compare import CELERY_MODE, side_by_side
from bench.clients import Plan, run_clients
from bench.endtoend import polling_plan
from bench.http import Connection
from bench.options import parse
from bench.report import Section
from bench.runs import cpu_row
from bench.tally import Tally

QUEUED_POLLS = 3  # answers "queued" this many times per job, then "succeeded"


class FakeApi:
    """POST /v1/inference answers 202 with a new job; GET /v1/jobs/{id} answers queued, then
    succeeded; a job id it never gave is 404 (and one poll of each job answers 500 when
    `flaky`)."""

    def __init__(self, flaky: bool = False) -> None:
        self.flaky = flaky
        self.polls: Counter[str] = Counter()
        self.submitted = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                method, path = lines[0].split()[:2]
                sizes = [
                    int(line.split(":")[1]) for line in lines if "content-length" in line.lower()
                ]
                await reader.readexactly(sizes[0] if sizes else 0)
                status, body = self.answer(method, path)
                data = json.dumps(body).encode()
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(data)))
                writer.write(data)
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str]]:
        if method == "POST" and path == "/v1/inference":
            self.submitted += 1
            return 202, {"job_id": f"job-{self.submitted}", "status": "queued"}
        job_id = path.removeprefix("/v1/jobs/")
        if method != "GET" or not job_id.startswith("job-"):
            return 404, {"detail": "not found"}
        self.polls[job_id] += 1
        if self.flaky and self.polls[job_id] == 1:
            return 500, {"detail": "boom"}
        if self.polls[job_id] <= QUEUED_POLLS:
            return 200, {"job_id": job_id, "status": "queued"}
        return 200, {"job_id": job_id, "status": "succeeded"}


def run(plan: Plan, api: FakeApi) -> Tally:
    async def go() -> Tally:
        server = await asyncio.start_server(api.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conns = [Connection("127.0.0.1", port, timeout_s=2) for _ in range(plan.clients)]
        tally = Tally()
        try:
            await run_clients(plan, conns, tally)
        finally:
            for conn in conns:
                conn.close()
            server.close()
        return tally

    return asyncio.run(go())


def plan_of(argv: list[str]) -> Plan:
    def make(kind: str, jobs: int, clients: int, **extra: object) -> Plan:
        return Plan("http://127.0.0.1:1", kind, range(jobs), clients, **extra)  # type: ignore[arg-type]

    return polling_plan(make, parse(argv))


def test_the_polling_mode_polls_every_ten_ms_with_32_clients_by_default():
    plan = plan_of(["--mode", "polling"])
    assert (plan.wait, plan.poll_s, plan.clients, plan.kind) == ("poll", 0.01, 32, "wait")
    faster = plan_of(["--mode", "polling", "--poll-interval-ms", "2.5", "-c", "4", "-n", "40"])
    assert (faster.poll_s, faster.clients, len(faster.numbers)) == (0.0025, 4, 40)


def test_each_job_is_submitted_once_and_polled_until_terminal():
    api = FakeApi()
    tally = run(plan_of(["-c", "4", "-n", "20", "--poll-interval-ms", "5"]), api)
    assert api.submitted == 20 and tally.accepted_count == 20
    assert tally.statuses == Counter({"succeeded": 20})
    assert set(api.polls.values()) == {QUEUED_POLLS + 1}  # stopped at the terminal answer
    assert tally.requests == 20 * (1 + QUEUED_POLLS + 1)
    assert len(tally.terminal_s) == len(tally.submit_s) == 20
    # Submit to terminal spans the polls and the pauses between them, never less.
    assert min(tally.terminal_s) >= QUEUED_POLLS * 0.005
    assert all(t >= s for t, s in zip(tally.terminal_s, tally.submit_s, strict=False))
    assert not tally.errors and tally.unfinished == 0


def test_a_failed_poll_is_an_error_and_the_client_keeps_polling():
    api = FakeApi(flaky=True)
    tally = run(plan_of(["-c", "2", "-n", "6", "--poll-interval-ms", "1"]), api)
    assert tally.errors == Counter({"GET answered 500": 6})
    assert tally.statuses == Counter({"succeeded": 6})
    assert tally.refused_count == 0  # refused counts submissions only


def test_every_report_carries_the_cpu_of_all_processes_but_the_load_generator():
    section = Section("t", "polling")
    cpu_row(section, {"api": 2.0, "consumers": 1.0, "redis": 0.5, "postgres": 0.5}, 1000, 9.0)
    labels = dict(section.rows)
    assert labels["CPU per job, all processes but the load generator"] == "4.00 ms"
    assert section.data["cpu_ms_per_job_service"] == 4.0
    assert section.data["cpu_ms_per_job"]["load_client"] == 9.0  # apart, never in the figure


def measured(title: str, mode: str, jobs_s: float, cpu_ms: float, p50_ms: float) -> Section:
    section = Section(title, mode)
    section.data.update(
        throughput_jobs_s=jobs_s, cpu_ms_per_job_service=cpu_ms, terminal_ms={"p50": p50_ms}
    )
    return section


def test_our_waiting_modes_are_reported_as_multiples_of_the_celery_design():
    sections = [
        measured(
            "polling: 32 clients, 3000 jobs, submit then poll every 10 ms", "polling", 250, 7, 120
        ),
        measured(
            "concurrent: 32 clients, 3000 jobs, POST with Prefer: wait=10", "concurrent", 550, 3, 50
        ),
        measured("batch: 4 clients", "batch", 9000, 1, 5),
        measured("Celery reference, polling: 32 clients", CELERY_MODE, 100, 20, 300),
    ]
    compared = side_by_side(sections)
    assert compared is not None
    assert [c["jobs_s_x_celery"] for c in compared.data["compared"]] == [2.5, 5.5]
    assert [c["cpu_per_job_x_celery"] for c in compared.data["compared"]] == [0.35, 0.15]
    rows = dict(compared.rows)
    assert "2.5 x the Celery design" in rows["polling: submit then poll every 10 ms"]
    assert "0.15 x the Celery design's" in rows["concurrent: POST with Prefer: wait=10"]


def test_no_side_by_side_without_a_celery_run():
    assert side_by_side([measured("polling: 1, 2, x", "polling", 1, 1, 1)]) is None
