"""`make run`'s runner (python -m devstack run) makes a development admin key on its first start,
prints it and keeps it in its file, and the README's calls work with it; a second start keeps
the same key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devstack.databases import fresh_database
from devstack.keys import drop_keys_at
from devstack.ports import free_port
from devstack.roles import REPO_ROOT
from eventlog.names import Names
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.e2e


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not healthy:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def test_make_run_makes_prints_and_keeps_a_development_admin_key(
    redis_url: str, postgres_url: str, template_database: str, models_dir: Path, tmp_path: Path
):
    port = free_port()
    names = Names(f"run-{uuid.uuid4().hex[:10]}")
    key_file = tmp_path / "api-key"
    with fresh_database(postgres_url, template_database) as database_url:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "STREAM_PREFIX": names.prefix,
            "MODELS_DIR": str(models_dir),
            "API_PORT": str(port),
            "API_KEY_FILE": str(key_file),
            "CONSUMERS": "1",
            "METRICS_PORT": "0",
            "PARTITIONS": os.environ.get("TEST_PARTITIONS", "1"),
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver below is on 127.0.0.1
        }
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "run.log"
        try:
            proc = start(env, log)
            wait_healthy(url, proc, log)
            key = key_file.read_text().strip()
            assert key.startswith("ifk_")
            # Printed in the banner, which comes once every role has started.
            deadline = time.monotonic() + 30
            while key not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert key_file.stat().st_mode & 0o777 == 0o600
            auth = {"Authorization": f"Bearer {key}"}
            assert httpx.post(f"{url}/v1/inference", json={"text": "hi"}).status_code == 401
            job = httpx.post(
                f"{url}/v1/inference",
                json={"text": "limited time offer, click now"},
                headers={**auth, "Prefer": "wait=30"},
                timeout=40,
            )
            assert job.status_code == 200, job.text
            assert job.json()["status"] == "succeeded"
            # The notifier runs too: a job's webhook is delivered.
            receiver = Receiver()
            try:
                hooked = httpx.post(
                    f"{url}/v1/inference",
                    json={"text": "hi", "webhook": receiver.url("/ok/run")},
                    headers=auth,
                )
                assert hooked.status_code == 202, hooked.text
                (request,) = receiver.wait_for("/ok/run", 1)
                assert request.json["job_id"] == hooked.json()["job_id"]
            finally:
                receiver.close()
            assert stop(proc) == 0

            again = start(env, log)
            wait_healthy(url, again, log)
            assert key_file.read_text().strip() == key
            listed = httpx.get(f"{url}/v1/admin/keys", headers=auth).json()["keys"]
            assert len(listed) == 1 and listed[0]["scopes"] == ["admin"]
            assert stop(again) == 0
        finally:
            drop_keys_at(redis_url, names)
