"""The `inferflow` command against a real InferFlow, run as users run it (a process of its
own): its output, its exit codes, and a 10,000-line batch file interrupted twice and resumed
without a duplicate job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from inferflow import Client
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

INFERFLOW = str(Path(sys.executable).parent / "inferflow")
SPAM = "limited time offer, click now"
# Running for about 2 s (four attempts of 450 ms, within INFERENCE_TIMEOUT_MS): a command
# started after it (a process start each) still finds it unfinished.
SLOW = "[[sleep_ms:450]] [[transient:3]] see you at seven"


@pytest.fixture(scope="module")
def service(make_service: ServiceFactory) -> Service:
    running = make_service()
    running.start_all(consumers=2)
    return running


def start(service: Service, *args: str, key: str | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "INFERFLOW_URL": service.url,
        "INFERFLOW_API_KEY": key or service.admin_key,
    }
    return subprocess.Popen(
        [INFERFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run(service: Service, *args: str, key: str | None = None) -> tuple[int, str, str]:
    process = start(service, *args, key=key)
    out, err = process.communicate(timeout=90)
    return process.returncode, out, err


def test_submit_get_events_jobs_and_cancel_print_tables_or_json(service: Service):
    code, out, _ = run(service, "submit", SPAM, "--wait", "--json")
    assert code == 0
    job = json.loads(out)
    assert job["status"] == "succeeded" and job["result"]["label"] == "spam"
    job_id = job["job_id"]

    code, out, _ = run(service, "get", job_id)
    assert code == 0
    table = dict(line.split(None, 1) for line in out.splitlines())
    assert table["job_id"] == job_id and table["status"] == "succeeded"
    assert table["label"] == "spam" and float(table["score"]) > 0.5

    code, out, _ = run(service, "events", job_id, "--follow")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["OCCURRED_AT", "TYPE", "CONSUMER", "ATTEMPT", "ENTRY_ID"]
    assert rows[0].split()[1] == "JobRequested" and rows[-1].split()[1] == "JobSucceeded"
    code, out, _ = run(service, "--json", "events", job_id)
    assert [json.loads(line)["type"] for line in out.splitlines()][-1] == "JobSucceeded"

    code, out, _ = run(service, "jobs", "--status", "succeeded", "--json")
    assert code == 0 and job_id in {json.loads(line)["job_id"] for line in out.splitlines()}
    code, out, _ = run(service, "jobs", "--limit", "1")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["JOB_ID", "STATUS", "LABEL"] and len(rows) == 1

    code, out, _ = run(service, "submit", SLOW, "--json")
    slow = json.loads(out)["job_id"]
    code, out, _ = run(service, "cancel", slow, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("args", "expected", "says"),
    [
        (["submit", "[[permanent]] hello", "--wait"], 1, ""),  # the job failed
        ([], 2, "usage"),
        (["get"], 2, "usage"),
        (["--url", "ftp://127.0.0.1", "jobs"], 2, "unsupported protocol"),
        (["get", str(uuid.uuid4())], 4, "404"),
        (["submit", "   "], 6, "validation-error"),
        (["submit", "[[sleep_ms:400]] hello", "--wait", "0.05"], 7, ""),  # still running
        (["--url", "http://127.0.0.1:9", "--retries", "0", "jobs"], 5, "ConnectError"),
    ],
)
def test_exit_codes(service: Service, args: list[str], expected: int, says: str):
    code, _, err = run(service, *args)
    assert code == expected, err
    assert says in err


def test_exit_codes_of_keys_and_conflicts(service: Service):
    assert run(service, "jobs", key="ifk_" + "x" * 46)[0] == 3
    reader = service.new_key("default", "read")
    code, _, err = run(service, "submit", "hello", key=reader)
    assert code == 3 and "forbidden" in err
    done = json.loads(run(service, "submit", SPAM, "--wait", "--json")[1])["job_id"]
    code, _, err = run(service, "cancel", done)
    assert code == 6 and "job-ended" in err


def test_a_batch_file_gets_one_output_line_per_input_line(service: Service, tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        f'{{"custom_id": "a", "text": "{SPAM}"}}\n'
        '{"text": "see you at seven"}\n'
        "\n"
        "not json\n"
        '{"custom_id": "b", "text": "   "}\n'
        '{"custom_id": "a", "text": "again"}\n'
        '{"custom_id": "c", "text": "[[permanent]] fails"}\n'
    )
    output = tmp_path / "out.jsonl"
    code, out, err = run(service, "batch", str(source), "-o", str(output), "--json", "--progress")
    assert code == 1, err  # not every line succeeded
    last = err.splitlines()[-1]  # the progress bar's final state (its \r read as a line end)
    assert last.startswith("done") and "6/6" in last and "failed 4" in last, err
    assert json.loads(out) == {
        "output": str(output),
        "lines": 6,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "rejected": 3,
    }
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(x["line"], x["custom_id"], x["status"]) for x in lines] == [
        (1, "a", "succeeded"),
        (2, "line-2", "succeeded"),
        (4, "line-4", "rejected"),
        (5, "b", "rejected"),
        (6, "a", "rejected"),
        (7, "c", "failed"),
    ]
    assert lines[0]["result"]["label"] == "spam"
    assert [x["error_type"].rsplit(":", 1)[1] for x in lines if x["status"] == "rejected"] == [
        "malformed-json",
        "validation-error",
        "duplicate-custom-id",
    ]
    assert not Path(str(output) + ".state").exists()


def _parts_sent(state: Path) -> int:
    try:
        return len(json.loads(state.read_text())["parts"])
    except (OSError, ValueError):
        return 0


def _interrupt_after(process: subprocess.Popen[str], state: Path, parts: int, sig: int) -> int:
    deadline = time.monotonic() + 60
    while _parts_sent(state) < parts and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(sig)
    process.communicate(timeout=30)
    return _parts_sent(state)


def test_a_10000_line_file_interrupted_and_killed_resumes_without_duplicates(
    service: Service, tmp_path: Path
):
    tenant = f"files-{uuid.uuid4().hex[:6]}"
    # A job rate that lets a part (500 lines) through at a time, so the file takes a while.
    limits = {"jobs_per_s": 4000, "jobs_burst": 500}
    assert service.http.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).status_code == 200
    key = service.new_key(tenant, "submit", "read")
    source = tmp_path / "big.jsonl"
    with source.open("w") as sink:
        for n in range(1, 10_001):
            named = f'"custom_id": "c{n}", ' if n % 100 else ""  # every 100th line has none
            sink.write(f'{{{named}"text": "{SPAM if n % 2 else "see you"} {n}"}}\n')
    output = tmp_path / "big.out.jsonl"
    state = tmp_path / "big.out.jsonl.state"
    args = ("batch", str(source), "-o", str(output), "--part-lines", "500", "--no-progress")

    first = start(service, *args, key=key)
    sent = _interrupt_after(first, state, 5, signal.SIGINT)
    assert first.returncode == 130 and 5 <= sent < 20
    second = start(service, *args, key=key)
    sent = _interrupt_after(second, state, 10, signal.SIGKILL)
    assert second.returncode == -signal.SIGKILL and 10 <= sent < 20

    code, out, err = run(service, *args, key=key)
    assert code == 0, err
    assert "resuming" in err and "10,000 lines: 10,000 succeeded" in out
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [x["line"] for x in lines] == list(range(1, 10_001))
    expected = [f"c{n}" if n % 100 else f"line-{n}" for n in range(1, 10_001)]
    assert [x["custom_id"] for x in lines] == expected
    assert {x["status"] for x in lines} == {"succeeded"}
    with Client(service.url, key) as client:
        held = [job.job_id for job in client.jobs(page_size=1000)]
    assert len(held) == 10_000 == len(set(held))  # the server made no job twice
    assert set(held) == {x["job_id"] for x in lines}
