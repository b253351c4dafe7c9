"""GET /v1/jobs through the real processes: paging while jobs keep arriving gives every job that
existed at the start exactly once; the filters; the limit's bounds; bad cursors and parameters;
keys and tenants (each tenant lists its own jobs only)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.keys import new_key
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

MODEL = "spam-tfidf-lr-v1"
PROBLEM = "application/problem+json"


def unique(tenant: str) -> str:
    return f"{tenant}-{uuid.uuid4().hex[:8]}"


def submit_batch(client: httpx.Client, texts: list[str]) -> tuple[str, list[str]]:
    response = client.post("/v1/inference/batch", json={"items": [{"text": t} for t in texts]})
    assert response.status_code == 202, response.text
    body = response.json()
    return body["batch_id"], [item["job_id"] for item in body["items"]]


def submit(client: httpx.Client, text: str) -> str:
    response = client.post("/v1/inference", json={"text": text})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def listing(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.get("/v1/jobs", params=params)


def page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = listing(client, **params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def walk(client: httpx.Client, pause_s: float = 0.0, **params: Any) -> list[dict[str, Any]]:
    """Every job the pages give, following next_cursor to the last page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        body = page(client, **params, **({"cursor": cursor} if cursor else {}))
        items += body["items"]
        if body["next_cursor"] is None:
            return items
        cursor = body["next_cursor"]
        time.sleep(pause_s)
    raise AssertionError("the pages never ended")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["job_id"] for item in items]


def wait_listed(client: httpx.Client, job_ids: list[str], timeout_s: float = 60) -> None:
    """Until every job is listed terminal: the projector has its outcome."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = {i["job_id"] for i in walk(client, limit=1000) if i["status"] != "queued"}
        done -= {i["job_id"] for i in walk(client, limit=1000, status="started")}
        if done >= set(job_ids):
            return
        time.sleep(0.1)
    raise TimeoutError("jobs not projected terminal in time")


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = dict(response.json())
    assert body["type"] == f"urn:inferflow:problem:{slug}"
    return body


def created(item: dict[str, Any]) -> datetime:
    # Parsed: a time on a whole second is written without a fraction, so text misorders it.
    return datetime.fromisoformat(item["created_at"])


def newest_first(items: list[dict[str, Any]]) -> bool:
    keys = [(created(item), item["job_id"]) for item in items]
    return all(a > b for a, b in itertools.pairwise(keys))


@pytest.fixture(scope="module")
def acme(service: Service) -> dict[str, Any]:
    """A tenant's batch of 20, three single jobs and two that fail, all terminal."""
    client = service.client_of(unique("acme"))
    batch_id, batch = submit_batch(client, [f"batch item {n}, free offer" for n in range(20)])
    singles = [submit(client, f"see you at {n}") for n in range(3)]
    failing = [submit(client, f"[[permanent]] doomed {n}") for n in range(2)]
    every = batch + singles + failing
    wait_listed(client, every)
    return {"client": client, "batch_id": batch_id, "batch": batch, "failing": failing,
            "every": every}  # fmt: skip


# Paging while jobs arrive


def test_paging_while_jobs_arrive_lists_every_earlier_job_exactly_once(service: Service):
    client = service.client_of(unique("pager"))
    _, first = submit_batch(client, [f"earlier job {n}" for n in range(120)])
    earlier = first + [submit(client, f"earlier single {n}") for n in range(10)]
    wait_listed(client, earlier)
    assert len(walk(client, limit=1000)) == len(earlier)

    arrived: list[str] = []
    stop = threading.Event()

    def keep_submitting() -> None:
        with httpx.Client(base_url=service.url, headers=client.headers, timeout=10) as own:
            n = 0
            while not stop.is_set():
                arrived.append(submit(own, f"arriving {n}"))
                n += 1

    submitter = threading.Thread(target=keep_submitting)
    submitter.start()
    try:
        while len(arrived) < 5:
            time.sleep(0.01)
        listed = walk(client, pause_s=0.03, limit=7)
    finally:
        stop.set()
        submitter.join(10)
    assert len(arrived) > 20, "jobs kept arriving during the walk"
    seen = ids(listed)
    assert len(seen) == len(set(seen)), "no job twice"
    assert set(earlier) <= set(seen), "no earlier job skipped"
    assert set(seen) <= set(earlier) | set(arrived)
    assert newest_first(listed)
    # The walk started below the new jobs: they are listed above every earlier one.
    assert [i for i in seen if i in set(earlier)] == seen[len(seen) - len(earlier) :]


# Filters


def test_status_filters_one_status_or_any_of_several(acme):
    client = acme["client"]
    assert set(ids(walk(client, status="failed"))) == set(acme["failing"])
    both = walk(client, status=["succeeded", "failed"])
    assert set(ids(both)) == set(acme["every"]) and newest_first(both)
    assert walk(client, status=["queued", "started", "cancelled"]) == []


def test_model_version_label_and_batch_filters(acme):
    client = acme["client"]
    every = walk(client)
    assert set(ids(walk(client, model_version=MODEL))) == set(acme["every"])
    assert walk(client, model_version="no-such-model") == []
    labels = {i["result"]["label"] for i in every if i["result"]}
    assert labels, "succeeded jobs have labels"
    for label in labels:
        expected = {i["job_id"] for i in every if i["result"] and i["result"]["label"] == label}
        assert set(ids(walk(client, label=label))) == expected
    batch = walk(client, batch_id=acme["batch_id"], limit=6)
    assert set(ids(batch)) == set(acme["batch"]) and newest_first(batch)
    assert all(i["batch_id"] == acme["batch_id"] for i in batch)
    assert walk(client, batch_id=str(uuid.uuid4())) == []


def test_filters_combine_every_one_must_hold(acme):
    client = acme["client"]
    every = walk(client)
    label = next(i["result"]["label"] for i in every if i["result"])
    expected = {
        i["job_id"]
        for i in every
        if i["batch_id"] == acme["batch_id"] and i["result"] and i["result"]["label"] == label
    }
    both = walk(client, batch_id=acme["batch_id"], label=label, status="succeeded")
    assert set(ids(both)) == expected
    assert walk(client, batch_id=acme["batch_id"], status="failed") == []


def test_created_after_is_inclusive_and_created_before_exclusive(acme):
    client = acme["client"]
    every = walk(client)
    middle = every[len(every) // 2]["created_at"]
    after = walk(client, created_after=middle)
    before = walk(client, created_before=middle, limit=4)
    assert ids(after) + ids(before) == ids(every)
    assert all(created(i) >= created(every[len(every) // 2]) for i in after)
    assert all(created(i) < created(every[len(every) // 2]) for i in before)
    newest = every[0]["created_at"]
    assert walk(client, created_after=newest, created_before=newest) == []


def test_pages_are_jobs_as_a_read_of_each_shows_them(acme):
    client = acme["client"]
    for item in page(client, limit=5)["items"]:
        assert client.get(f"/v1/jobs/{item['job_id']}").json() == item


# Limits, cursors and links


def test_limit_bounds_and_the_link_header(acme):
    client = acme["client"]
    one = listing(client, limit=1)
    assert one.status_code == 200 and len(one.json()["items"]) == 1
    link = one.headers["link"]
    assert link.startswith("</v1/jobs?") and link.endswith('>; rel="next"')
    assert "limit=1" in link and f"cursor={one.json()['next_cursor']}" in link
    followed = client.get(link[1 : link.index(">")])
    assert followed.json() == page(client, limit=1, cursor=one.json()["next_cursor"])
    whole = listing(client, limit=1000)
    assert whole.json()["next_cursor"] is None and "link" not in whole.headers
    assert len(whole.json()["items"]) == len(acme["every"])
    assert len(page(client)["items"]) == len(acme["every"])  # default 100
    for limit in (0, -1, 1001, "many"):
        body = assert_problem(listing(client, limit=limit), 422, "validation-error")
        assert body["errors"][0]["field"] == "query.limit"


def test_bad_cursors_are_400_problems(acme, service: Service):
    client = acme["client"]
    cursor = page(client, limit=2)["next_cursor"]
    tampered = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    for bad in ("", "garbage", tampered, cursor + "A", cursor[:-1]):
        assert_problem(listing(client, limit=2, cursor=bad), 400, "invalid-cursor")
    other = assert_problem(listing(client, limit=2, status="failed", cursor=cursor), 400,
                           "invalid-cursor")  # fmt: skip
    assert "other filters" in other["detail"]
    # Another tenant's key: the cursor is not for its listing.
    stranger = service.client_of(unique("stranger"), "read")
    assert_problem(listing(stranger, limit=2, cursor=cursor), 400, "invalid-cursor")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "query.status.0"),
        ({"created_after": "2026-12-06T09:30:00"}, "query.created_after"),
        ({"created_before": "tomorrow"}, "query.created_before"),
        ({"label": ""}, "query.label"),
        ({"stauts": "failed"}, "query.stauts"),
    ],
)
def test_invalid_parameters_are_422_problems(acme, params, field):
    body = assert_problem(listing(acme["client"], **params), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [field]


# Keys and tenants


def test_no_key_is_401(service: Service):
    response = listing(service.client(None))
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="inferflow"'
    # Before the parameters are judged: nothing about them is told to a caller without a key.
    assert_problem(listing(service.client(None), limit=0, cursor="x"), 401, "unauthenticated")


@pytest.mark.parametrize("key", [new_key(), "ifk_" + "x" * 46, "not-a-key"])
def test_a_wrong_key_is_401(service: Service, key):
    response = listing(service.client(key))
    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_key_without_the_read_scope_is_403(service: Service):
    submitter = service.client_of(unique("writer"), "submit")
    submit(submitter, "mine, but I may not read it")
    body = assert_problem(listing(submitter), 403, "forbidden")
    assert body["scope"] == "read"


def test_each_tenant_lists_its_own_jobs_only(service: Service, acme):
    globex = service.client_of(unique("globex"))
    _, theirs = submit_batch(globex, [f"globex job {n}" for n in range(5)])
    wait_listed(globex, theirs)
    assert set(ids(walk(globex))) == set(theirs)
    assert set(ids(walk(acme["client"]))) == set(acme["every"])
    # Filters cannot reach across: another tenant's batch lists nothing.
    assert walk(globex, batch_id=acme["batch_id"]) == []
    # Not even an admin key's listing spans tenants: it lists its own tenant's jobs.
    admin = {i["job_id"] for i in walk(service.http, limit=1000)}
    assert not admin & (set(theirs) | set(acme["every"]))
    assert walk(service.client_of(unique("nobody"), "read")) == []
