"""Real InferFlow processes for end-to-end tests: start, kill, restart, talk HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from infra.names import Names

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """api, consumers and projector as child processes sharing one environment."""

    def __init__(self, env: dict[str, str], log_dir: Path, names: Names) -> None:
        self.names = names
        self.port = free_port()
        self.env = {**os.environ, **env, "API_PORT": str(self.port), "API_HOST": "127.0.0.1"}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, role: str, name: str | None = None, **env: str) -> None:
        name = name or role
        extra = {"CONSUMER_NAME": name} if role == "consumer" else {}
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", role],
            cwd=ROOT,
            env={**self.env, **extra, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if role == "api":
            self.wait_healthy()

    def start_all(self, consumers: int = 2) -> None:
        self.start("projector")
        for i in range(consumers):
            self.start("consumer", f"consumer-{i}")
        self.start("api")

    def wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["api"].poll() is not None:
                raise RuntimeError(f"api exited:\n{self.logs('api')}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"api not healthy after {timeout_s} s:\n{self.logs('api')}")

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)

    def stop(self, name: str, timeout_s: float = 15) -> int:
        self.procs[name].send_signal(signal.SIGTERM)
        return self.procs[name].wait(timeout_s)

    def signal(self, name: str, signum: int) -> None:
        proc = self.procs[name]
        proc.send_signal(signum)
        if signum == signal.SIGKILL:
            proc.wait(10)

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.http.close()

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
