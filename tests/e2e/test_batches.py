"""Batches as objects through the real processes: a JSON Lines file in (POST /v1/batches), a
batch's counts (GET /v1/batches/{id}) and its results file (GET /v1/batches/{id}/results)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.batches import BatchBody, BatchFileAccepted, ResultLine
from eventlog.lanes import known_lanes
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.support import one_server

pytestmark = pytest.mark.e2e

FILES = "/v1/batches"
SSE = {"Accept": "text/event-stream"}
NDJSON = {"Content-Type": "application/x-ndjson"}
URN = "urn:inferflow:problem:"
TEXTS = ("limited time offer, click now", "see you at seven", "your invoice is attached")


def lines_of(count: int, prefix: str = "line") -> list[dict[str, Any]]:
    return [{"custom_id": f"{prefix}-{i}", "text": f"{TEXTS[i % 3]} #{i}"} for i in range(count)]


def file_of(lines: list[Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def post_file(
    client: httpx.Client, body: bytes | Iterator[bytes], key: str | None = None, **headers: str
) -> httpx.Response:
    sent = {**NDJSON, **({"Idempotency-Key": key} if key else {}), **headers}
    return client.post(FILES, content=body, headers=sent, timeout=120)


def accepted(response: httpx.Response) -> dict[str, Any]:
    """A 202 body, checked against its published schema and its own counts."""
    assert response.status_code == 202, response.text
    body = response.json()
    BatchFileAccepted.model_validate(body)
    assert body["accepted"] + body["replayed"] + body["rejected"] == body["lines"]
    assert response.headers["location"] == f"{FILES}/{body['batch_id']}"
    return body


def is_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == URN + slug and body["status"] == status
    return body


def batch_of(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = client.get(f"{FILES}/{batch_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    BatchBody.model_validate(body)
    counts = body["counts"]
    parts = ("queued", "started", "succeeded", "failed", "cancelled")
    assert sum(counts[part] for part in parts) == counts["total"]
    return body


def wait_finished(client: httpx.Client, batch_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = batch_of(client, batch_id)
        if body["status"] in ("completed", "cancelled"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} still {body}")
        time.sleep(0.25)


def results_of(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    with client.stream("GET", f"{FILES}/{batch_id}/results", timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    for line in lines:
        ResultLine.model_validate(line)
    return lines


def events_of(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a text/event-stream response as they come: {event, data, id}."""
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def follow(client: httpx.Client, batch_id: str, **headers: str) -> list[dict[str, str]]:
    path = f"{FILES}/{batch_id}/events"
    with client.stream("GET", path, headers={**SSE, **headers}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events_of(response))  # to the end of the stream


def log_length(service: Service) -> int:
    """Entries in every lane of every partition."""
    client = service.redis()
    try:
        return sum(
            client.xlen(service.names.lane(p, lane))
            for p in range(service.partitions)
            for lane in known_lanes(client, service.names, p)
        )
    finally:
        client.close()


@one_server(
    "a throughput-sized file: on a cluster, the smaller files of this module take the same path"
)
@pytest.mark.timeout(300)
def test_a_file_of_100000_lines_runs_and_its_results_name_every_custom_id_once(service: Service):
    lines = lines_of(100_000, f"big-{uuid.uuid4().hex[:6]}")
    body = file_of(lines)
    key = f"file-{uuid.uuid4()}"
    # Sent in pieces cut anywhere, as a slow client would send it.
    pieces = (body[i : i + 65_537] for i in range(0, len(body), 65_537))
    first = accepted(post_file(service.http, pieces, key))
    assert (first["lines"], first["accepted"], first["rejected"]) == (100_000, 100_000, 0)
    assert first["bad_lines"] == [] and first["bad_lines_omitted"] == 0

    batch = wait_finished(service.http, first["batch_id"])
    assert batch["status"] == "completed"
    assert batch["counts"]["total"] == batch["counts"]["succeeded"] == 100_000
    assert batch["finished_at"] >= batch["created_at"]

    results = results_of(service.http, first["batch_id"])
    assert Counter(r["custom_id"] for r in results) == Counter(line["custom_id"] for line in lines)
    assert len({r["job_id"] for r in results}) == 100_000
    assert {r["status"] for r in results} == {"succeeded"}
    assert all(r["result"]["label"] in ("spam", "ham") for r in results)

    # The same file with the same key: no new job, every line replayed, the same batch.
    before = log_length(service)
    again = accepted(post_file(service.http, body, key))
    assert again["batch_id"] == first["batch_id"]
    assert (again["accepted"], again["replayed"], again["rejected"]) == (0, 100_000, 0)
    assert again["bad_lines"] == []
    assert log_length(service) == before
    assert batch_of(service.http, first["batch_id"])["counts"]["total"] == 100_000


def test_bad_lines_are_reported_by_number_and_the_others_accepted(service: Service):
    good = [json.dumps(line) for line in lines_of(3, f"mixed-{uuid.uuid4().hex[:6]}")]
    raw = [
        good[0],  # 1
        "",  # 2: blank, skipped
        "{not json",  # 3
        json.dumps({"text": "no custom_id"}),  # 4
        json.dumps({"custom_id": json.loads(good[0])["custom_id"], "text": "again"}),  # 5
        json.dumps({"custom_id": "unknown-model", "text": "hi", "model_version": "nope"}),  # 6
        json.dumps({"custom_id": "keyed", "text": "hi", "idempotency_key": "k"}),  # 7
        json.dumps({"custom_id": "blank", "text": "   "}),  # 8
        json.dumps({"custom_id": "long", "text": "x" * 70_000}),  # 9: over MAX_BODY_BYTES
        good[1] + "\r",  # 10: CRLF
        json.dumps({"custom_id": "late", "text": "hi", "cancel_after": "soon"}),  # 11
        "42",  # 12
        good[2],  # 13, no final newline
    ]
    body = accepted(post_file(service.http, "\n".join(raw).encode()))
    assert (body["lines"], body["accepted"], body["rejected"]) == (12, 3, 9)
    problems = {bad["line"]: bad["error"] for bad in body["bad_lines"]}
    assert [bad["line"] for bad in body["bad_lines"]] == [3, 4, 5, 6, 7, 8, 9, 11, 12]
    slugs = {line: problem["type"].removeprefix(URN) for line, problem in problems.items()}
    assert slugs == {
        3: "malformed-json",
        4: "validation-error",
        5: "duplicate-custom-id",
        6: "unknown-model-version",
        7: "validation-error",
        8: "validation-error",
        9: "line-too-long",
        11: "validation-error",
        12: "validation-error",
    }
    assert problems[4]["errors"][0]["field"] == "line.4.custom_id"
    assert problems[7]["errors"][0]["field"] == "line.7.idempotency_key"
    assert problems[8]["errors"][0]["field"] == "line.8.text"
    assert problems[12]["errors"][0]["field"] == "line.12"
    named = {bad["line"]: bad["custom_id"] for bad in body["bad_lines"]}
    assert (named[5], named[6], named[8], named[3]) == (
        json.loads(good[0])["custom_id"],
        "unknown-model",
        "blank",
        None,
    )

    wait_finished(service.http, body["batch_id"])
    results = results_of(service.http, body["batch_id"])
    assert sorted(r["custom_id"] for r in results) == sorted(
        json.loads(g)["custom_id"] for g in good
    )


def test_a_file_without_a_valid_line_is_422_and_a_wrong_media_type_415(service: Service):
    none_valid = is_problem(post_file(service.http, b"{bad\n[]\n"), 422, "no-valid-lines")
    assert [bad["line"] for bad in none_valid["bad_lines"]] == [1, 2]
    assert none_valid["rejected"] == 2
    empty = is_problem(post_file(service.http, b"\n\n"), 422, "no-valid-lines")
    assert empty["lines"] == 0
    body = file_of(lines_of(2))
    for content_type in ("application/json", "text/plain", "application/x-ndjson; charset=latin-1"):
        response = post_file(service.http, body, **{"Content-Type": content_type})
        is_problem(response, 415, "unsupported-media-type")
    jsonl = accepted(post_file(service.http, body, **{"Content-Type": "application/jsonl"}))
    assert jsonl["accepted"] == 2


def test_a_changed_line_sent_again_with_the_key_is_refused_and_new_lines_join(service: Service):
    key = f"file-{uuid.uuid4()}"
    lines = lines_of(3, "changed")
    first = accepted(post_file(service.http, file_of(lines), key))
    changed = [
        lines[0],
        {**lines[1], "text": "something else"},
        lines[2],
        {"custom_id": "new", "text": "n"},
    ]
    response = post_file(service.http, file_of(changed), key)
    again = accepted(response)
    assert "idempotent-replayed" not in response.headers  # one line made a new job
    assert again["batch_id"] == first["batch_id"]
    assert (again["accepted"], again["replayed"], again["rejected"]) == (1, 2, 1)
    assert again["bad_lines"][0]["line"] == 2
    assert again["bad_lines"][0]["error"]["type"] == URN + "idempotency-key-reused"
    batch = wait_finished(service.http, first["batch_id"])
    assert batch["counts"]["total"] == 4
    replay = post_file(service.http, file_of(lines), key)
    assert accepted(replay)["replayed"] == 3
    assert replay.headers["idempotent-replayed"] == "true"


def test_results_are_readable_while_the_batch_runs(service: Service):
    # Slow lines run alone, one after another per consumer: the fast ones end long before.
    slow = [{"custom_id": f"slow-{i}", "text": f"[[sleep_ms:400]] slow {i}"} for i in range(8)]
    fast = lines_of(4, "fast")
    body = accepted(post_file(service.http, file_of(slow + fast)))
    batch_id = body["batch_id"]
    deadline = time.monotonic() + 30
    while True:
        before = batch_of(service.http, batch_id)
        results = results_of(service.http, batch_id)
        ended = {r["custom_id"] for r in results}
        if {line["custom_id"] for line in fast} <= ended and before["status"] == "in_progress":
            break
        assert time.monotonic() < deadline, (before, results)
        time.sleep(0.05)
    assert len(results) < 12  # the batch was still running
    assert len(ended) == len(results)
    terminal = before["counts"]["total"] - before["counts"]["queued"] - before["counts"]["started"]
    assert len(results) >= terminal  # read after the counts: never fewer
    assert before["finished_at"] is None
    done = wait_finished(service.http, batch_id)
    assert done["finished_at"] is not None
    assert len(results_of(service.http, batch_id)) == 12


def test_a_json_batch_is_a_batch_object_too(service: Service):
    items = [{"text": "hello there", "custom_id": "j-1"}, {"text": "[[permanent]] no"}]
    response = service.http.post("/v1/inference/batch", json={"items": items})
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    batch = wait_finished(service.http, batch_id)
    assert (batch["counts"]["succeeded"], batch["counts"]["failed"]) == (1, 1)
    results = {r["custom_id"]: r for r in results_of(service.http, batch_id)}
    assert results["j-1"]["status"] == "succeeded"
    failed = results[None]
    assert failed["status"] == "failed" and failed["error"] and failed["error_type"]
    assert failed["result"] is None


def test_a_batch_is_counted_before_the_projector_has_its_jobs(make_service: ServiceFactory):
    service = make_service()
    service.start("api")  # no projector, no consumer yet
    body = accepted(post_file(service.http, file_of(lines_of(2500, "early"))))
    batch = batch_of(service.http, body["batch_id"])
    assert batch["status"] == "in_progress"
    assert batch["counts"]["total"] == batch["counts"]["queued"] == 2500
    assert results_of(service.http, body["batch_id"]) == []
    service.start("projector")
    service.start_consumers(2)
    assert wait_finished(service.http, body["batch_id"])["counts"]["succeeded"] == 2500


def test_a_cancelled_file_lists_its_jobs_cancelled_and_its_progress_ends(
    make_service: ServiceFactory,
):
    service = make_service()
    service.start("api")
    service.start("projector")  # no consumer yet: every job stays queued until the cancel
    body = accepted(post_file(service.http, file_of(lines_of(50, "cancelled"))))
    batch_id = body["batch_id"]
    with service.http.stream("GET", f"{FILES}/{batch_id}/events", headers=SSE) as response:
        events = events_of(response)
        assert json.loads(next(events)["data"])["status"] == "in_progress"
        cancelled = service.http.post(f"{FILES}/{batch_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        # The jobs the projection had end at once; the others when a consumer reaches them.
        service.start_consumers(1)
        rest = list(events)
    assert rest[-1]["event"] == "finished"
    assert json.loads(rest[-1]["data"])["status"] == "cancelled"
    batch = wait_finished(service.http, batch_id)
    assert (batch["status"], batch["counts"]["cancelled"]) == ("cancelled", 50)
    results = results_of(service.http, batch_id)
    assert sorted(r["custom_id"] for r in results) == sorted(f"cancelled-{i}" for i in range(50))
    assert {(r["status"], r["cancel_reason"]) for r in results} == {
        ("cancelled", "batch_cancelled")
    }
    assert all(r["result"] is None for r in results)


def test_a_file_past_its_limits_is_413_with_what_was_accepted(make_service: ServiceFactory):
    service = make_service(BATCH_FILE_MAX_LINES="5", BATCH_MAX_ITEMS="2")
    service.start("api")
    body = file_of(lines_of(3)) + b"\n" + file_of(lines_of(4, "more"))
    over = is_problem(post_file(service.http, body), 413, "file-too-large")
    assert (over["lines"], over["accepted"], over["first_unread_line"]) == (5, 5, 7)
    assert batch_of(service.http, over["batch_id"])["counts"]["total"] == 5


def test_a_file_is_taken_at_its_tenants_rate_not_refused(service: Service):
    tenant = f"paced-{uuid.uuid4().hex[:6]}"
    limits = {"jobs_per_s": 20, "jobs_burst": 10}
    assert service.http.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).status_code == 200
    client = service.client_of(tenant)
    started = time.monotonic()
    response = post_file(client, file_of(lines_of(30)))
    elapsed_s = time.monotonic() - started
    body = accepted(response)
    assert body["accepted"] == 30
    assert elapsed_s >= 0.9  # 10 at once, then 20 at 20 a second
    assert "jobs" in response.headers["ratelimit-policy"]


def test_jobs_are_on_the_log_before_the_file_has_arrived(service: Service):
    """The body is read as it comes: the first chunk's jobs are appended while the client still
    holds the rest of the file back."""
    lines = lines_of(1500, f"stream-{uuid.uuid4().hex[:6]}")
    before = log_length(service)
    seen: list[int] = []

    def body() -> Iterator[bytes]:
        yield file_of(lines[:1000])
        deadline = time.monotonic() + 10
        while log_length(service) < before + 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(log_length(service) - before)
        yield file_of(lines[1000:])

    assert accepted(post_file(service.http, body()))["accepted"] == 1500
    assert seen[0] >= 1000


# ---------------------------------------------------------------- progress as Server-Sent Events


def test_a_batchs_progress_streams_until_every_job_is_terminal(service: Service):
    slow = [{"custom_id": f"p-slow-{i}", "text": f"[[sleep_ms:300]] slow {i}"} for i in range(6)]
    body = accepted(post_file(service.http, file_of(slow + lines_of(3, "p-fast"))))
    events = follow(service.http, body["batch_id"])
    states = [json.loads(event["data"]) for event in events]
    for state in states:
        BatchBody.model_validate(state)
    assert [e["event"] for e in events] == ["progress"] * (len(events) - 1) + ["finished"]
    assert len(events) >= 2  # it was followed while it ran
    assert [s["status"] for s in states[:-1]] == ["in_progress"] * (len(states) - 1)
    last = states[-1]
    assert last["status"] == "completed" and last["counts"]["succeeded"] == 9
    assert last["finished_at"] is not None
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids)  # each event a new state
    done = [s["counts"]["total"] - s["counts"]["queued"] - s["counts"]["started"] for s in states]
    assert done == sorted(done)

    # Resuming: from the finished event, nothing more (204 stops an EventSource); from an
    # earlier one, the state now, which is the finished one.
    path = f"{FILES}/{body['batch_id']}/events"
    gone = service.http.get(path, headers={**SSE, "Last-Event-ID": ids[-1]})
    assert gone.status_code == 204
    resumed = follow(service.http, body["batch_id"], **{"Last-Event-ID": ids[0]})
    assert [(e["event"], e["id"]) for e in resumed] == [("finished", ids[-1])]


def test_a_progress_stream_resumed_at_the_current_state_waits_for_a_change(service: Service):
    slow = [{"custom_id": f"r-slow-{i}", "text": f"[[sleep_ms:300]] slow {i}"} for i in range(6)]
    body = accepted(post_file(service.http, file_of(slow)))
    path = f"{FILES}/{body['batch_id']}/events"
    with service.http.stream("GET", path, headers=SSE, timeout=60) as response:
        first = next(events_of(response))
    resumed = follow(service.http, body["batch_id"], **{"Last-Event-ID": first["id"]})
    assert first["id"] not in [event["id"] for event in resumed]
    assert resumed[-1]["event"] == "finished"


def test_batch_events_are_an_event_stream_only(service: Service, acme_batch: str):
    response = service.http.get(f"{FILES}/{acme_batch}/events")
    is_problem(response, 406, "not-acceptable")


# ---------------------------------------------------------------- security


@pytest.fixture(scope="module")
def acme_batch(service: Service) -> str:
    client = service.client_of("acme", "submit", "read")
    body = accepted(post_file(client, file_of(lines_of(2, "acme"))))
    wait_finished(client, body["batch_id"])
    return body["batch_id"]


READS = ["{batch}", "{batch}/results", "{batch}/events"]


def _calls(batch_id: str) -> list[tuple[str, str, bytes | None]]:
    calls: list[tuple[str, str, bytes | None]] = [("POST", FILES, file_of(lines_of(1, "sec")))]
    return calls + [("GET", f"{FILES}/{path.format(batch=batch_id)}", None) for path in READS]


def _send(client: httpx.Client, method: str, path: str, body: bytes | None) -> httpx.Response:
    # The batch of the reads is finished: its event stream is one event and its end.
    return client.request(method, path, content=body, headers=NDJSON if body else SSE)


def test_every_batch_route_needs_a_key(service: Service, acme_batch: str):
    for method, path, body in _calls(acme_batch):
        for client in (service.client(None), service.client("ifk_" + "0" * 40)):
            response = _send(client, method, path, body)
            is_problem(response, 401, "unauthenticated")


def test_every_batch_route_needs_its_scope(service: Service, acme_batch: str):
    reader = service.client_of("acme", "read")
    submitter = service.client_of("acme", "submit")
    post, *reads = _calls(acme_batch)
    is_problem(_send(reader, *post), 403, "forbidden")
    for call in reads:
        is_problem(_send(submitter, *call), 403, "forbidden")
        assert _send(reader, *call).status_code == 200


def test_another_tenants_batch_is_404_like_no_batch(service: Service, acme_batch: str):
    other = service.client_of("globex", "submit", "read")
    for path in READS:
        theirs = other.get(f"{FILES}/{path.format(batch=acme_batch)}", headers=SSE)
        nobody = other.get(f"{FILES}/{path.format(batch=str(uuid.uuid4()))}", headers=SSE)
        garbage = other.get(f"{FILES}/{path.format(batch='not-a-uuid')}", headers=SSE)
        for response in (theirs, nobody, garbage):
            is_problem(response, 404, "http-404")
        assert theirs.json()["detail"].replace(acme_batch, "X") == nobody.json()["detail"].replace(
            nobody.url.path.split("/")[3], "X"
        )
    assert service.http.get(f"{FILES}/{acme_batch}").status_code == 200  # an admin sees it
