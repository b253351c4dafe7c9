"""Real tests of the embedded Valkey/PostgreSQL servers used by `make run` and the fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from devstack.embedded import EmbeddedPostgres, EmbeddedRedis
from devstack.ports import free_port
from devstack.servers import embedded_postgres, embedded_redis

REPO_ROOT = Path(__file__).resolve().parents[2]
AOF_FSYNC_WAIT = 1.5  # appendfsync everysec: data older than ~1 s survives a SIGKILL


def _pg_url(server: EmbeddedPostgres) -> str:
    return server.url.replace("postgresql+psycopg://", "postgresql://")


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists or is a zombie (dead, awaiting reaping)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _process_gone(pid):
            return True
        time.sleep(0.1)
    return False


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


def test_redis_starts_answers_and_xadd(tmp_path: Path) -> None:
    with embedded_redis(tmp_path) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        entry_id = client.xadd("inferflow:test", {"text": "hello"})
        assert client.xlen("inferflow:test") == 1
        assert client.xrange("inferflow:test")[0][0] == entry_id
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    assert not server.running()


def test_redis_kill_then_restart_keeps_aof_data(tmp_path: Path) -> None:
    with embedded_redis(tmp_path) as server:
        port = server.port
        client = redis.Redis.from_url(server.url)
        client.xadd("inferflow:durable", {"n": "1"})
        client.set("inferflow:key", "kept")
        client.close()
        time.sleep(AOF_FSYNC_WAIT)
        server.kill()
        assert not server.running()
        server.restart()
        assert server.port == port
        client = redis.Redis.from_url(server.url)
        assert client.get("inferflow:key") == b"kept"
        assert client.xlen("inferflow:durable") == 1
        client.close()


def test_redis_start_failure_reports_log(tmp_path: Path) -> None:
    with embedded_redis(tmp_path) as first:
        clash = EmbeddedRedis(tmp_path / "clash", port=first.port, timeout=5)
        with pytest.raises(RuntimeError, match="valkey"):
            clash.start()
        assert not clash.running()


def test_postgres_select_and_restart_keeps_table(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path) as server:
        assert server.url.endswith(f"@127.0.0.1:{server.port}/inferflow")
        with psycopg.connect(_pg_url(server)) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table kept (id int primary key)")
            conn.execute("insert into kept values (42)")
        server.restart()
        with psycopg.connect(_pg_url(server)) as conn:
            assert conn.execute("select id from kept").fetchall() == [(42,)]
        server.kill()
        server.start()  # crash recovery after SIGKILL
        with psycopg.connect(_pg_url(server)) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (1,)


PARENT_SCRIPT = """
import sys, time
from pathlib import Path
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis
kind, data_dir = sys.argv[1], Path(sys.argv[2])
server = EmbeddedRedis(data_dir) if kind == "redis" else EmbeddedPostgres(data_dir, fast=True)
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-traversable temp dir: as root, pytest's 0700 tmp_path is unreachable by the
    postgres user, and the relocation fallback cannot clean up after a SIGKILLed parent."""
    with tempfile.TemporaryDirectory(prefix="inferflow-deathsig-") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp)


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_server_dies_with_its_parent(kind: str, shared_tmp: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, kind, str(shared_tmp / kind)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _process_gone(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_gone(child_pid, timeout=10), f"{kind} pid {child_pid} outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_a_restarted_redis_is_ready_only_once_its_data_is_loaded(tmp_path: Path) -> None:
    # Enough data that loading the AOF takes a while: Valkey answers INFO meanwhile, but
    # refuses every read with -LOADING.
    with embedded_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        for start in range(0, 400_000, 50_000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, start + 50_000):
                pipe.set(f"k{i}", "v" * 20)
            pipe.execute()
        client.close()
        time.sleep(AOF_FSYNC_WAIT)
        server.kill()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("k399999") == b"v" * 20  # no BusyLoadingError: loaded before ready
        client.close()
