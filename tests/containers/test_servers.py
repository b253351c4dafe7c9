"""The fixtures' server selection with a Docker engine: containers from the stand-in images,
and an image that cannot be had said in one line, with the embedded server instead."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
import redis

from devstack import servers
from devstack.images import STANDINS, ensure_standins

pytestmark = [
    pytest.mark.containers,
    pytest.mark.timeout(900),  # the first run on a machine builds the images
    pytest.mark.skipif(not servers.docker_available(), reason="no Docker engine answers"),
]


@pytest.fixture(scope="module", autouse=True)
def standins() -> None:
    ensure_standins()


def running(image: str) -> list[str]:
    ps = ["docker", "ps", "-q", "--filter", f"ancestor={image}"]
    return subprocess.run(ps, capture_output=True, text=True, check=True).stdout.split()


def test_without_urls_the_servers_are_containers(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_REDIS_IMAGE", STANDINS.redis)
    monkeypatch.setenv("TEST_POSTGRES_IMAGE", STANDINS.postgres)
    before = set(running(STANDINS.redis)), set(running(STANDINS.postgres))
    with servers.redis_server() as redis_url, servers.postgres_server() as postgres_url:
        assert set(running(STANDINS.redis)) - before[0]
        assert set(running(STANDINS.postgres)) - before[1]
        assert redis.Redis.from_url(redis_url).ping()
        plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as conn:
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
    assert set(running(STANDINS.redis)) == before[0]  # stopped with the block
    assert set(running(STANDINS.postgres)) == before[1]


def test_an_image_that_cannot_be_had_falls_back_to_the_embedded_server(monkeypatch, capfd):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("TEST_REDIS_IMAGE", "inferflow-test/no-such-image:0")
    with servers.redis_server() as url:
        assert redis.Redis.from_url(url).ping()
        assert not running("inferflow-test/no-such-image:0")
    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("devstack:")]
    assert len(said) == 1 and "no Redis container" in said[0] and "embedded" in said[0]
