"""`AsyncClient`: `Client`'s methods for asyncio programs, on httpx's AsyncClient."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
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


class AsyncClient:
    """As `Client`, awaited: every method is a coroutine, `jobs`, `events`, `batch_events`
    and `batch_results` are async iterators."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, headers = calls.config(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )
        self._retry = retry or RetryPolicy()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def submit(
        self,
        text: str,
        model_version: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> Job:
        started = time.monotonic()
        call = calls.submit(
            text, model_version, wait, idempotency_key, deadline, webhook, webhook_events
        )
        job = calls.job(await self._send(call))
        if wait and not job.done and wait > calls.MAX_WAIT_S:
            waited = await self.wait(job.job_id, timeout=wait - (time.monotonic() - started))
            return replace(waited, replayed=job.replayed)
        return job

    async def get(self, job_id: str) -> Job:
        return calls.job(await self._send(calls.get(job_id)))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            step = calls.MAX_WAIT_S if end is None else max(0.0, end - time.monotonic())
            call = calls.get(job_id, wait=min(step, calls.MAX_WAIT_S))
            job = calls.job(await self._send(call))
            if job.done or (end is not None and time.monotonic() >= end):
                return job

    async def cancel(self, job_id: str) -> Job:
        return calls.job(await self._send(calls.cancel(job_id)))

    async def jobs(
        self,
        status: str | Iterable[str] | None = None,
        *,
        model_version: str | None = None,
        label: str | None = None,
        batch_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
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
            found, cursor = calls.page(await self._send(call))
            for job in found:
                yield job
            if cursor is None:
                return

    async def events(self, job_id: str, follow: bool = True) -> AsyncIterator[Event]:
        if not follow:
            body = (await self._send(calls.timeline(job_id))).json()
            for event in body["events"]:
                yield Event.from_json(event)
            return
        async for message in self._stream(f"/v1/jobs/{job_id}/events"):
            event = Event.from_json(json.loads(message.data))
            yield event
            if event.terminal:
                return

    async def submit_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        chunk_size: int = calls.BATCH_ITEMS,
        deadline: Deadline | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> ManySubmitted:
        items: list[Item] = []
        batch_ids: list[str] = []
        for chunk in calls.chunks(calls.items(entries), chunk_size):
            response = await self._send(calls.many(chunk, deadline, webhook, webhook_events))
            found = calls.many_items(response, chunk, len(items))
            items += found
            batch_ids.append(found[0].batch_id)
        return ManySubmitted(tuple(batch_ids), tuple(items))

    async def submit_file(
        self,
        body: bytes,
        idempotency_key: str | None = None,
        deadline: Deadline | None = None,
        webhook: str | None = None,
    ) -> FileAccepted:
        call = calls.upload(body, idempotency_key, deadline, webhook)
        return calls.file_accepted(await self._send(call))

    async def batch(self, batch_id: str) -> Batch:
        return calls.a_batch(await self._send(calls.batch(batch_id)))

    async def wait_batch(
        self, batch_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> Batch:
        """The batch once every job of it has ended, or as it stands after `timeout` s
        (read every `interval` s; `batch_events` follows it live instead)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = await self.batch(batch_id)
            if batch.done or (end is not None and time.monotonic() + interval > end):
                return batch
            await asyncio.sleep(interval)

    async def batch_events(self, batch_id: str) -> AsyncIterator[Batch]:
        async for message in self._stream(f"/v1/batches/{batch_id}/events"):
            yield Batch.from_json(json.loads(message.data))
            if message.event == "finished":
                return

    async def batch_results(self, batch_id: str) -> AsyncIterator[ResultLine]:
        response = await self._open(calls.results(batch_id))
        try:
            async for line in response.aiter_lines():
                if line:
                    yield ResultLine.from_json(json.loads(line))
        finally:
            await response.aclose()

    async def cancel_batch(self, batch_id: str) -> Batch:
        return calls.a_batch(await self._send(calls.cancel_batch(batch_id)))

    async def webhook_secret(self) -> str:
        response = await self._send(calls.Call("GET", "/v1/webhooks/secret"))
        return str(response.json()["secret"])

    async def _send(self, call: calls.Call) -> httpx.Response:
        response = await self._open(call)
        await response.aread()
        return response

    async def _open(self, call: calls.Call) -> httpx.Response:
        retry = 0
        while True:
            try:
                response = await self._http.send(call.request(self._http), stream=True)
            except Exception as exc:
                delay = calls.verdict(self._retry, retry, None, exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    await response.aread()
                except httpx.TransportError as exc:
                    delay = calls.verdict(self._retry, retry, None, exc)
                else:
                    delay = calls.verdict(self._retry, retry, response, None)
                finally:
                    await response.aclose()
            await asyncio.sleep(delay)
            retry += 1

    async def _stream(self, path: str) -> AsyncIterator[Message]:
        last_id: str | None = None
        breaks = 0
        while True:
            response = await self._open(calls.stream(path, last_id))
            try:
                if response.status_code == 204:
                    return
                parser = Parser()
                async for line in response.aiter_lines():
                    message = parser.feed(line)
                    if message is not None:
                        last_id = message.id or last_id
                        breaks = 0
                        yield message
            except httpx.TransportError as exc:
                await asyncio.sleep(calls.verdict(self._retry, breaks, None, exc))
                breaks += 1
            finally:
                await response.aclose()
