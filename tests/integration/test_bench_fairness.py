"""The fairness mode on a real stack at a tiny scale (timings are docs/benchmarks.md's, these
are shapes), the stoppable load it is built on, and the end-to-end measurement of batches,
whose jobs go to bulk lanes."""

from __future__ import annotations

import http.server
import json
import math
import threading
import time
from collections.abc import Iterator

import pytest

from bench import loadgen
from bench.clients import Plan
from bench.fairness import fairness
from bench.options import parse
from bench.runs import Bench, batch_plan
from bench.stack import running_stack
from bench.targets import check
from tests.support import one_server


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers every POST at once: 200 with a terminal job, or 202 queued for /queued."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        status = 202 if self.path == "/queued" else 200
        job = {"job_id": "j", "status": "queued" if status == 202 else "succeeded"}
        body = json.dumps(job).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # the read after a 202: terminal
        body = json.dumps({"job_id": "j", "status": "succeeded"}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answers() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_load_told_to_stop_ends_early_and_its_clients_think_between_jobs(answers: str):
    plan = Plan(answers, "wait", range(10**9), clients=2, wait="prefer", think_s=0.05)
    running = loadgen.start(plan, 2)
    time.sleep(1.0)
    assert not running.done()
    running.stop()
    tally = running.result()
    # Two clients, a job every 50 ms or more each, for about a second.
    assert 4 <= len(tally.terminal_s) <= 2 * 1.5 / 0.05
    assert len(tally.terminal_at) == len(tally.terminal_s)
    assert tally.began_at <= min(tally.terminal_at) <= max(tally.terminal_at) <= tally.ended_at
    assert (tally.waits_expired, tally.failures) == (0, 0)


def test_a_wait_answered_before_the_job_was_terminal_is_counted(answers: str):
    plan = Plan(answers, "wait", range(6), clients=2, path="/queued", wait="prefer")
    tally = loadgen.run(plan)
    assert (tally.waits_expired, len(tally.terminal_s), tally.unfinished) == (6, 6, 0)


@pytest.fixture
def servers_of_the_session(redis_url: str, postgres_url: str, monkeypatch) -> None:
    # running_stack takes the session's servers, whatever they are, from the environment.
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.delenv("TEST_REDIS_CLUSTER", raising=False)


@pytest.mark.usefixtures("servers_of_the_session")
def test_batches_are_measured_end_to_end_from_their_bulk_lanes(tmp_path):
    with running_stack(tmp_path) as service:
        bench = Bench(service, parse([]))
        try:
            measured = bench.measure(batch_plan(bench, 300, 2))
        finally:
            bench.close()
    assert (measured.outcomes.succeeded, measured.outcomes.lost) == (300, 0)
    assert {lane for _, lane in measured.outcomes.last_entries} == {"bulk:default"}
    assert measured.projected_at is not None
    assert measured.projection_rate() > 0


@one_server(
    "the bench's report of two runs: the cluster's bench runs are measured by the partitions mode"
)
@pytest.mark.usefixtures("servers_of_the_session")
def test_the_fairness_mode_reports_both_runs_side_by_side(tmp_path):
    jobs = 2000
    options = parse([
        "--mode", "fairness", "--fairness-jobs", str(jobs), "--batch-size", "500",
        "--fairness-idle-jobs", "40", "--fairness-think-ms", "20", "--warmup", "10",
    ])  # fmt: skip
    alone, beside, summary = fairness(tmp_path, options)

    assert (alone.data["with_b"], beside.data["with_b"]) == (False, True)
    for run in (alone, beside):
        a = run.data["a"]
        assert run.data["drained"]
        assert (a["accepted"], a["succeeded"], a["lost"], a["projected"]) == (jobs, jobs, 0, jobs)
        assert 0 < a["end_to_end"] <= a["accept_rate"]
        assert a["steady"] > 0
        assert len(a["tenths"]) == 10
        assert sum(run.data["cpu_ms_per_job"].values()) > 0
    idle = alone.data["b_idle"]
    assert (idle["count"], idle["lost"]) == (40, 0)
    assert "b" not in alone.data
    b = beside.data["b"]
    assert b["count"] > 0
    assert (b["lost"], b["failed"], b["unfinished"], b["failures"]) == (0, 0, 0, 0)
    assert b["p50"] <= b["p95"] <= b["p99"] <= b["max"]
    assert b["submitting"]["count"] + b["draining"]["count"] == b["count"]
    assert b["all"]["count"] >= b["count"]
    # Where B's time went, from its events: each part measured, and they add up.
    under = b["parts"]["under"]
    assert under["client"]["p50"] == b["p50"]
    assert 0 < under["accepted"]["p50"] + under["worked"]["p50"] <= under["client"]["p99"]
    assert under["slowest"]["count"] >= 1
    assert under["projected"]["p50"] > 0  # announcements were heard
    assert not math.isnan(idle["parts"]["answered"]["p50"])

    assert summary.mode == "fairness"
    assert summary.data["a_ratio"] == pytest.approx(
        beside.data["a"]["end_to_end"] / alone.data["a"]["end_to_end"]
    )
    assert summary.data["b_p95_ms"] == b["p95"]
    assert not math.isnan(summary.data["b_idle_ms"]["p95"])
    found = {t["target"]: t["verdict"] for t in check([summary]).data["targets"]}
    assert {v for t, v in found.items() if "#15" in t} <= {"met", "missed"}
    assert len([t for t in found if "#15" in t]) == 2
