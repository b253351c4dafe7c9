"""The roles of one stack (projector, consumers, api) as child processes sharing one environment.

``make run``, the end-to-end tests and the bench start InferFlow this way: each role as
``python -m <role>`` from the repository root, through :func:`devstack.embedded.spawn` so that
none outlives the process that started it. Their output goes to one log file per role (tests and
bench read its tail) or, without a log directory, to our stdout behind a ``name | `` prefix.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.embedded import spawn
from devstack.ports import free_port
from eventlog.names import Names

REPO_ROOT = Path(__file__).resolve().parent.parent
# Stopped in this order: no new jobs come in, then no new outcomes, then the projector
# catches up with the outcomes the consumers wrote last, then the notifiers with theirs.
STAGES = ("api", "consumer", "projector", "notifier")
STOP_TIMEOUT_S = 15.0
HEALTH_TIMEOUT_S = 30.0
POLL_S = 0.05
LOG_TAIL_CHARS = 4000
PREFIX_WIDTH = 12
PUMP_JOIN_S = 1.0  # an API's workers may hold its pipe open after it is gone

# Straight to 127.0.0.1: a proxy from the environment must not answer for our API.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Report = Callable[[str], None]


class RoleError(RuntimeError):
    """The API exited while starting, or did not become healthy in time."""


def side_by_side(env: Mapping[str, str]) -> dict[str, str]:
    """Our environment under ``env``, with the API on a free port of 127.0.0.1, so that stacks
    of tests and benches can run next to each other (and next to ``make run``)."""
    return {**os.environ, **env, "API_PORT": str(free_port()), "API_HOST": "127.0.0.1"}


def _quiet(message: str) -> None:
    pass


@dataclass
class _Child:
    role: str
    env: dict[str, str]  # on top of the stack's environment, kept for a restart
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = None


class Roles:
    """The roles of one stack, started and stopped one by one or all together.

    Each role runs under a name of its own (several consumers share the module ``consumer``);
    a consumer gets its name as ``CONSUMER_NAME``. The stack's stream names come from
    ``STREAM_PREFIX``, as the roles read it.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path | None = None,
        *,
        stop_timeout: float = STOP_TIMEOUT_S,
        report: Report = _quiet,
    ) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        self._report = report
        self._children: dict[str, _Child] = {}
        prefix = self.env.get("STREAM_PREFIX")
        self.names = Names(prefix) if prefix else Names()
        self.port = int(self.env.get("API_PORT", "8000"))
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: child.proc for name, child in self._children.items()}

    # -- starting

    def start(self, role: str, name: str | None = None, **env: str) -> None:
        """Start ``role`` as ``name`` (the role itself by default); the API is waited for."""
        name = name or role
        extra = dict(env)
        if role == "consumer":
            extra = {"CONSUMER_NAME": name, **env}
        elif role == "notifier":
            extra = {"NOTIFIER_NAME": name, **env}
        self._children[name] = self._spawn(role, name, extra)
        if role == "api":
            self.wait_healthy()

    def start_consumers(self, count: int, first: int = 0, metrics_base: int | None = None) -> None:
        """Consumers ``consumer-<first>`` on; with ``metrics_base``, consumer ``i`` serves its
        metrics on ``metrics_base + i``, as consumers on one host cannot share a port."""
        for i in range(first, first + count):
            ports = {} if metrics_base is None else {"METRICS_PORT": str(metrics_base + i)}
            self.start("consumer", f"consumer-{i}", **ports)

    def start_all(
        self,
        consumers: int = 2,
        first: int = 0,
        metrics_base: int | None = None,
        notifiers: int = 0,
    ) -> None:
        """Projector, then consumers and notifiers, then the API: so that it accepts jobs only
        once there are roles to run, project and tell of them."""
        self.start("projector")
        self.start_consumers(consumers, first, metrics_base)
        for i in range(notifiers):
            self.start("notifier", f"notifier-{i}" if notifiers > 1 else "notifier")
        self.start("api")

    def restart(self, name: str) -> None:
        """Stop a role (SIGTERM, then SIGKILL) and start it again with the same settings."""
        child = self._children[name]
        self.stop(name)
        self.start(child.role, name, **child.env)

    def wait_healthy(self, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (code := self.procs["api"].poll()) is not None:
                raise RoleError(f"api exited with code {code}{self._tail('api')}")
            if _healthy(f"{self.url}/health"):
                return
            time.sleep(POLL_S)
        raise RoleError(f"api not healthy after {timeout_s} s{self._tail('api')}")

    # -- stopping

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)

    def signal(self, name: str, signum: int) -> None:
        proc = self._children[name].proc
        proc.send_signal(signum)
        if signum == signal.SIGKILL:
            proc.wait(10)

    def stop(self, name: str, timeout_s: float | None = None) -> int:
        """SIGTERM a role, SIGKILL it if it is still there after the timeout; its exit code."""
        timeout = self.stop_timeout if timeout_s is None else timeout_s
        child = self._children[name]
        _terminate(child.proc)
        return self._reap(name, child, time.monotonic() + timeout, timeout)

    def stop_all(self) -> None:
        """Stop every role, stage by stage (see STAGES), each stage's roles together."""
        for stage in STAGES:
            members = {n: c for n, c in self._children.items() if c.role == stage}
            if not members:
                continue
            for child in members.values():
                _terminate(child.proc)
            deadline = time.monotonic() + self.stop_timeout
            for name, child in members.items():
                self._reap(name, child, deadline, self.stop_timeout)
            self._report(f"stopped {stage}")

    def exited(self) -> dict[str, int]:
        """Exit codes of the roles no longer running, by name."""
        return {
            name: code
            for name, child in self._children.items()
            if (code := child.proc.poll()) is not None
        }

    # -- output

    def logs(self, name: str) -> str:
        """The tail of a role's log file ("" when its output goes to stdout)."""
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.exists() else ""

    def _tail(self, name: str) -> str:
        logs = self.logs(name)
        return f":\n{logs}" if logs else ""

    # -- internals

    def _spawn(self, role: str, name: str, extra: dict[str, str]) -> _Child:
        # Unbuffered, so that a log's tail or the prefixed lines are current while it runs.
        env = {**self.env, **extra, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", role]
        if self.log_dir is not None:
            with (self.log_dir / f"{name}.log").open("ab") as log:
                return _Child(role, extra, spawn(argv, log, env=env, cwd=REPO_ROOT))
        proc = spawn(argv, subprocess.PIPE, env=env, cwd=REPO_ROOT)
        assert proc.stdout is not None
        prefix = f"{name:<{PREFIX_WIDTH}}| "
        pump = threading.Thread(
            target=_pump, args=(proc.stdout, prefix), daemon=True, name=f"pump-{name}"
        )
        pump.start()
        return _Child(role, extra, proc, pump)

    def _reap(self, name: str, child: _Child, deadline: float, timeout: float) -> int:
        try:
            code = child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._report(f"{name} did not stop in {timeout:.0f} s, killing it")
            child.proc.kill()
            code = child.proc.wait()
        if child.pump is not None:  # its last lines before the next stage's
            child.pump.join(PUMP_JOIN_S)
        return code


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()


def _pump(stream: IO[bytes], prefix: str) -> None:
    """Copy a child's output to our stdout, one prefixed line at a time."""
    out = sys.stdout.buffer
    for line in iter(stream.readline, b""):
        out.write(prefix.encode() + line)
        out.flush()
    stream.close()


def _healthy(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):
        return False
