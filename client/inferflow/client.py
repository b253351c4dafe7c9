"""`Client`: the API over blocking HTTP (httpx), with waiting, retries and paging built in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from inferflow import calls
from inferflow.calls import Deadline
from inferflow.retrying import RetryPolicy
from inferflow.sse import Message, Parser
from inferflow.types import Batch, Event, FileAccepted, Item, Job, ManySubmitted, ResultLine


class Client:
    """A client of one InferFlow API. `base_url` and `api_key` default to the environment's
    INFERFLOW_URL and INFERFLOW_API_KEY. Requests that fail with 429, 502-504 or a broken
    connection are sent again under `retry`, honouring Retry-After."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, headers = calls.config(base_url, api_key)
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )
        self._retry = retry or RetryPolicy()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------ jobs

    def submit(
        self,
        text: str,
        model_version: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> Job:
        """Submit one text. With `wait` (seconds), hold on until the job has ended or that long
        has passed. The Idempotency-Key (a new one unless given) makes retries safe."""
        started = time.monotonic()
        call = calls.submit(
            text, model_version, wait, idempotency_key, deadline, webhook, webhook_events
        )
        job = calls.job(self._send(call))
        if wait and not job.done and wait > calls.MAX_WAIT_S:
            waited = self.wait(job.job_id, timeout=wait - (time.monotonic() - started))
            return replace(waited, replayed=job.replayed)
        return job

    def get(self, job_id: str) -> Job:
        return calls.job(self._send(calls.get(job_id)))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended, or as it stands when `timeout` seconds have passed
        (long-polls, never a busy loop)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            step = calls.MAX_WAIT_S if end is None else max(0.0, end - time.monotonic())
            job = calls.job(self._send(calls.get(job_id, wait=min(step, calls.MAX_WAIT_S))))
            if job.done or (end is not None and time.monotonic() >= end):
                return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (again harmless); Conflict if it had ended."""
        return calls.job(self._send(calls.cancel(job_id)))

    def jobs(
        self,
        status: str | Iterable[str] | None = None,
        *,
        model_version: str | None = None,
        label: str | None = None,
        batch_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Every job of the tenant matching the filters, newest first, page after page."""
        cursor = None
        while True:
            call = calls.jobs(
                status,
                model_version,
                label,
                batch_id,
                created_after,
                created_before,
                page_size,
                cursor,
            )
            found, cursor = calls.page(self._send(call))
            yield from found
            if cursor is None:
                return

    def events(self, job_id: str, follow: bool = True) -> Iterator[Event]:
        """The job's events. With `follow`, live until its terminal event (reconnecting with
        Last-Event-ID when the stream ends early); without, the timeline so far."""
        if not follow:
            body = self._send(calls.timeline(job_id)).json()
            yield from (Event.from_json(event) for event in body["events"])
            return
        for message in self._stream(f"/v1/jobs/{job_id}/events"):
            event = Event.from_json(json.loads(message.data))
            yield event
            if event.terminal:
                return

    # --------------------------------------------------------------------------- batches

    def submit_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        chunk_size: int = calls.BATCH_ITEMS,
        deadline: Deadline | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> ManySubmitted:
        """Submit texts (or items: text, model_version, custom_id, idempotency_key, ...) in
        batches of `chunk_size`; each item gets an idempotency key unless it has one."""
        items: list[Item] = []
        batch_ids: list[str] = []
        for chunk in calls.chunks(calls.items(entries), chunk_size):
            response = self._send(calls.many(chunk, deadline, webhook, webhook_events))
            found = calls.many_items(response, chunk, len(items))
            items += found
            batch_ids.append(found[0].batch_id)
        return ManySubmitted(tuple(batch_ids), tuple(items))

    def submit_file(
        self,
        body: bytes,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
        webhook: str | None = None,
    ) -> FileAccepted:
        """Send a JSON Lines file (one job per line, each with a custom_id) as one batch."""
        call = calls.upload(body, idempotency_key, deadline, webhook)
        return calls.file_accepted(self._send(call))

    def batch(self, batch_id: str) -> Batch:
        return calls.a_batch(self._send(calls.batch(batch_id)))

    def wait_batch(
        self, batch_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> Batch:
        """The batch once every job of it has ended, or as it stands after `timeout` s
        (read every `interval` s; `batch_events` follows it live instead)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.batch(batch_id)
            if batch.done or (end is not None and time.monotonic() + interval > end):
                return batch
            time.sleep(interval)

    def batch_events(self, batch_id: str) -> Iterator[Batch]:
        """The batch's progress, live: a state whenever its counts change, to the end."""
        for message in self._stream(f"/v1/batches/{batch_id}/events"):
            yield Batch.from_json(json.loads(message.data))
            if message.event == "finished":
                return

    def batch_results(self, batch_id: str) -> Iterator[ResultLine]:
        """The batch's ended jobs (all of them once it is done), in the order accepted."""
        response = self._open(calls.results(batch_id))
        try:
            for line in response.iter_lines():
                if line:
                    yield ResultLine.from_json(json.loads(line))
        finally:
            response.close()

    def cancel_batch(self, batch_id: str) -> Batch:
        return calls.a_batch(self._send(calls.cancel_batch(batch_id)))

    def webhook_secret(self) -> str:
        """The tenant's webhook secret, for `verify_webhook`."""
        return str(self._send(calls.Call("GET", "/v1/webhooks/secret")).json()["secret"])

    # --------------------------------------------------------------------------- sending

    def _send(self, call: calls.Call) -> httpx.Response:
        response = self._open(call)
        response.read()
        return response

    def _open(self, call: calls.Call) -> httpx.Response:
        """The answer of `call`, its body not yet read, once it is not an error; retried."""
        retry = 0
        while True:
            try:
                response = self._http.send(call.request(self._http), stream=True)
            except Exception as exc:
                delay = calls.verdict(self._retry, retry, None, exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    response.read()
                except httpx.TransportError as exc:
                    delay = calls.verdict(self._retry, retry, None, exc)
                else:
                    delay = calls.verdict(self._retry, retry, response, None)
                finally:
                    response.close()
            time.sleep(delay)
            retry += 1

    def _stream(self, path: str) -> Iterator[Message]:
        """An event stream's messages, reconnecting with Last-Event-ID whenever it ends or
        breaks; done at a 204 (nothing after the last id) or when the caller stops."""
        last_id: str | None = None
        breaks = 0
        while True:
            response = self._open(calls.stream(path, last_id))
            try:
                if response.status_code == 204:
                    return
                parser = Parser()
                for line in response.iter_lines():
                    message = parser.feed(line)
                    if message is not None:
                        last_id = message.id or last_id
                        breaks = 0
                        yield message
            except httpx.TransportError as exc:
                time.sleep(calls.verdict(self._retry, breaks, None, exc))
                breaks += 1
            finally:
                response.close()
