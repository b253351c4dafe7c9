"""Client load from a background thread, for the fault tests: what each submission does is the
subclass's, and what the clients were promised (the 202s) is kept for the audit. The clients
send an API key, as every client of the API does."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import httpx


class Load:
    """Submits at a steady pace from a thread until the `with` block ends."""

    def __init__(self, url: str, key: str, per_second: float) -> None:
        self.unexpected: list[str] = []
        self._url, self._pause_s = url, 1 / per_second
        self._headers = {"Authorization": f"Bearer {key}"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=5, headers=self._headers) as client:
            i = 0
            while not self._stop.wait(self._pause_s):
                i += 1
                self.submit(client, i)

    def submit(self, client: httpx.Client, i: int) -> None:
        raise NotImplementedError


class PlainLoad(Load):
    """One attempt per job, no Idempotency-Key: a refusal (503, or no answer) is no promise."""

    def __init__(self, url: str, key: str, texts: Sequence[str], per_second: float = 40) -> None:
        super().__init__(url, key, per_second)
        self.texts = texts
        self.accepted: list[str] = []
        self.refused = 0

    def submit(self, client: httpx.Client, i: int) -> None:
        try:
            reply = client.post("/v1/inference", json={"text": self.texts[i % len(self.texts)]})
        except httpx.TransportError:
            self.refused += 1  # the API is down: no 202, no promise
            return
        if reply.status_code == 202:
            self.accepted.append(reply.json()["job_id"])
        elif reply.status_code == 503:
            self.refused += 1
        else:
            self.unexpected.append(f"{reply.status_code} {reply.text}")


class KeyedLoad(Load):
    """Every request under an Idempotency-Key, retried while it gets no answer or a 503, as a
    careful client does across restarts and failovers: a key that got a 202 is one job."""

    def __init__(self, url: str, key: str, per_second: float = 60, give_up_s: float = 30) -> None:
        super().__init__(url, key, per_second)
        self.accepted: dict[str, str] = {}
        self._give_up_s = give_up_s

    def submit(self, client: httpx.Client, i: int) -> None:
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self._give_up_s
        last = ""
        while time.monotonic() < deadline:
            try:
                reply = client.post(
                    "/v1/inference", json={"text": f"job {i}"}, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError as exc:
                last = repr(exc)
                time.sleep(0.05)
                continue
            if reply.status_code == 202:
                self.accepted[key] = reply.json()["job_id"]
                return
            if reply.status_code != 503:
                self.unexpected.append(f"{reply.status_code} {reply.text}")
                return
            last = reply.text
            time.sleep(0.05)
        self.unexpected.append(f"key {key}: no 202 within {self._give_up_s} s (last: {last})")
