"""The API's routes as requests to send and answers to read, shared by `Client` and
`AsyncClient`: these hold the what, the clients only the how (blocking or async)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from inferflow.errors import ConnectionFailed, ProblemError, error_for
from inferflow.retrying import RetryPolicy, retry_after, retryable_exception
from inferflow.types import Batch, FileAccepted, Item, Job, Problem

# What the API lets a long-poll ask for at once; longer waits are several of them.
MAX_WAIT_S = 60.0
# A long-poll's answer may come this long after its wait ran out (a busy server).
WAIT_SLACK_S = 15.0
BATCH_ITEMS = 1000
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
DEFAULT_URL = "http://127.0.0.1:8000"
VERSION = "0.1.0"

Deadline = float | int | timedelta | str


@dataclass(frozen=True)
class Call:
    """One request: `read_s`, when set, is how long to wait for its answer."""

    method: str
    path: str
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    read_s: float | None = None

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        timeout = client.timeout
        if self.read_s is not None:
            timeout = httpx.Timeout(timeout.connect, read=self.read_s + WAIT_SLACK_S)
        return client.build_request(
            self.method,
            self.path,
            params=list(self.params) or None,
            headers=dict(self.headers),
            json=self.json,
            content=self.content,
            timeout=timeout,
        )


def new_key() -> str:
    return str(uuid.uuid4())


def cancel_after(deadline: Deadline) -> str:
    """The Cancel-After value of a deadline: seconds (a number or a timedelta) or the API's own
    text (`90`, `1h30m`, `1500ms`)."""
    if isinstance(deadline, str):
        return deadline
    seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else float(deadline)
    return f"{round(seconds * 1000)}ms"


def _work_headers(idempotency_key: str | None, deadline: Deadline | None) -> dict[str, str]:
    headers = {"Idempotency-Key": idempotency_key or new_key()}
    if deadline is not None:
        headers["Cancel-After"] = cancel_after(deadline)
    return headers


def submit(
    text: str,
    model_version: str | None,
    wait: float | None,
    idempotency_key: str | None,
    deadline: Deadline | None,
    webhook: str | None,
    webhook_events: Sequence[str] | None,
) -> Call:
    body: dict[str, Any] = {"text": text}
    if model_version is not None:
        body["model_version"] = model_version
    if webhook is not None:
        body["webhook"] = webhook
    if webhook_events is not None:
        body["webhook_events_filter"] = list(webhook_events)
    headers = _work_headers(idempotency_key, deadline)
    read_s = None
    if wait:
        wait = min(wait, MAX_WAIT_S)
        headers["Prefer"] = f"wait={wait:g}"
        read_s = wait
    return Call("POST", "/v1/inference", headers=headers, json=body, read_s=read_s)


def get(job_id: str, wait: float | None = None) -> Call:
    if not wait:
        return Call("GET", f"/v1/jobs/{job_id}")
    wait = min(wait, MAX_WAIT_S)
    return Call("GET", f"/v1/jobs/{job_id}", params=[("wait", f"{wait:g}")], read_s=wait)


def cancel(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{job_id}/cancel")


def jobs(
    status: str | Iterable[str] | None,
    model_version: str | None,
    label: str | None,
    batch_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
    cursor: str | None,
) -> Call:
    params: list[tuple[str, str]] = []
    statuses = [status] if isinstance(status, str) else list(status or ())
    params += [("status", s) for s in statuses]
    for name, value in (("model_version", model_version), ("label", label), ("batch_id", batch_id)):
        if value is not None:
            params.append((name, value))
    for name, when in (("created_after", created_after), ("created_before", created_before)):
        if when is not None:
            params.append((name, when.isoformat()))
    params.append(("limit", str(page_size)))
    if cursor is not None:
        params.append(("cursor", cursor))
    return Call("GET", "/v1/jobs", params=params)


def page(response: httpx.Response) -> tuple[list[Job], str | None]:
    body = response.json()
    return [Job.from_json(item) for item in body["items"]], body.get("next_cursor")


def timeline(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/events")


def stream(path: str, last_event_id: str | None) -> Call:
    headers = {"Accept": SSE}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    # A stream is quiet up to the server's heartbeat (15 s) between events.
    return Call("GET", path, headers=headers, read_s=30.0)


def items(entries: Iterable[str | Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    """Batch items from texts or item mappings, each with an idempotency key of its own."""
    for entry in entries:
        item: dict[str, Any] = {"text": entry} if isinstance(entry, str) else dict(entry)
        item["idempotency_key"] = item.get("idempotency_key") or new_key()
        yield item


def many(
    chunk: list[dict[str, Any]],
    deadline: Deadline | None,
    webhook: str | None,
    webhook_events: Sequence[str] | None,
) -> Call:
    body: dict[str, Any] = {"items": chunk}
    if webhook is not None:
        body["webhook"] = webhook
    if webhook_events is not None:
        body["webhook_events_filter"] = list(webhook_events)
    headers = {"Cancel-After": cancel_after(deadline)} if deadline is not None else {}
    return Call("POST", "/v1/inference/batch", headers=headers, json=body)


def many_items(response: httpx.Response, chunk: list[dict[str, Any]], offset: int) -> list[Item]:
    body = response.json()
    return [
        Item(
            index=offset + answer["index"],
            custom_id=answer.get("custom_id"),
            status=answer["status"],
            job_id=answer.get("job_id"),
            error=Problem.from_json(answer["error"]) if answer.get("error") else None,
            idempotency_key=chunk[answer["index"]]["idempotency_key"],
            batch_id=body["batch_id"],
        )
        for answer in body["items"]
    ]


def upload(
    body: bytes,
    idempotency_key: str | None,
    deadline: Deadline | None,
    webhook: str | None,
) -> Call:
    headers = {"Content-Type": NDJSON, **_work_headers(idempotency_key, deadline)}
    params = [("webhook", webhook)] if webhook is not None else []
    # The server may hold a file while its tenant's job rate lets the chunks through.
    return Call("POST", "/v1/batches", params=params, headers=headers, content=body, read_s=600)


def file_accepted(response: httpx.Response) -> FileAccepted:
    return FileAccepted.from_json(response.json())


def batch(batch_id: str) -> Call:
    return Call("GET", f"/v1/batches/{batch_id}")


def cancel_batch(batch_id: str) -> Call:
    return Call("POST", f"/v1/batches/{batch_id}/cancel")


def results(batch_id: str) -> Call:
    return Call("GET", f"/v1/batches/{batch_id}/results", read_s=60.0)


def job(response: httpx.Response) -> Job:
    replayed = response.headers.get("idempotent-replayed") == "true"
    return Job.from_json(response.json(), replayed=replayed)


def a_batch(response: httpx.Response) -> Batch:
    return Batch.from_json(response.json())


def problem(response: httpx.Response) -> ProblemError:
    """The exception of an error answer (read already: stream answers are read first)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"title": response.reason_phrase, "detail": response.text[:500]}
    found = Problem.from_json(body, status=response.status_code)
    if found.status != response.status_code:
        found = Problem(found.type, found.title, response.status_code, found.detail, found.extra)
    return error_for(found, retry_after(response.headers.get("retry-after")))


def verdict(
    policy: RetryPolicy, retry: int, response: httpx.Response | None, exc: Exception | None
) -> float:
    """Seconds to wait before sending a failed request again (retry number `retry`), or the
    error to raise: a problem's own exception, or ConnectionFailed once retries run out."""
    if exc is not None:
        if not retryable_exception(exc):
            raise exc
        delay = policy.delay(retry, None)
        if delay is None:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        return delay
    assert response is not None
    delay = policy.delay(retry, response)
    if delay is None:
        raise problem(response)
    return delay


def config(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers of a client: arguments first, then INFERFLOW_URL and
    INFERFLOW_API_KEY."""
    url = base_url or os.environ.get("INFERFLOW_URL") or DEFAULT_URL
    key = api_key or os.environ.get("INFERFLOW_API_KEY")
    headers = {"User-Agent": f"inferflow-client/{VERSION}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return url, headers


def chunks(entries: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
