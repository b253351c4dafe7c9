"""Real InferFlow processes for end-to-end tests: start, kill, restart, talk HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from api.keys import KeyStore, parse_scopes
from devstack.roles import REPO_ROOT, Roles, side_by_side
from domain.tenants import DEFAULT_TENANT
from eventlog.connection import Client, connect, is_cluster
from eventlog.entries import Entry, range_entries
from eventlog.lanes import known_lanes

ROOT = REPO_ROOT
TERMINAL = ("succeeded", "failed", "cancelled")


class Service(Roles):
    """The roles of one test's stack, each logging to its file, with the HTTP calls of tests.

    `http` sends an admin key of the default tenant, as a user of `make run` would;
    `client_of` makes clients of other tenants and scopes."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        super().__init__(side_by_side(env), log_dir)
        self._clients: list[httpx.Client] = []
        self.admin_key = self.new_key(DEFAULT_TENANT, "admin")
        self.http = self.client(self.admin_key)

    def new_key(self, tenant: str, *scopes: str, **limits: Any) -> str:
        """A new key of `tenant` with `scopes`, made in the stack's database."""

        async def create() -> str:
            engine = create_async_engine(self.env["DATABASE_URL"])
            try:
                store = KeyStore(engine)
                _record, key = await store.create(tenant, parse_scopes(scopes), "test", **limits)
                return key
            finally:
                await engine.dispose()

        return asyncio.run(create())

    def client(self, key: str | None) -> httpx.Client:
        """An HTTP client of the API sending `key` (none: no Authorization)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=self.url, timeout=10, headers=headers)
        self._clients.append(client)
        return client

    def client_of(self, tenant: str, *scopes: str) -> httpx.Client:
        """A client with a new key of `tenant` (scopes submit and read unless named)."""
        return self.client(self.new_key(tenant, *(scopes or ("submit", "read"))))

    def close(self) -> None:
        self.stop_all()
        for client in self._clients:
            client.close()

    @property
    def partitions(self) -> int:
        return int(self.env.get("PARTITIONS", "1"))

    def redis(self) -> Client:
        """A client of the stack's Redis (a cluster's, when it is one); the caller closes it."""
        url = self.env["REDIS_URL"]
        return connect(url, is_cluster(url))

    def log(self) -> list[Entry]:
        """Every entry of every lane of every partition, lane by lane, each lane in order."""
        client = self.redis()
        try:
            return [
                entry
                for p in range(self.partitions)
                for lane in known_lanes(client, self.names, p)
                for entry in range_entries(client.xrange(self.names.lane(p, lane)))
            ]
        finally:
            client.close()

    def submit(
        self, text: str, headers: dict[str, str] | None = None, **extra: object
    ) -> httpx.Response:
        return self.http.post("/v1/inference", json={"text": text, **extra}, headers=headers)

    def wait_terminal(self, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.http.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in TERMINAL:
                return body
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still {body.get('status')} after {timeout_s} s")
