"""``python -m infra run``: the local all-in-one runner behind ``make run``.

Starts embedded Redis/PostgreSQL when ``REDIS_URL``/``DATABASE_URL`` are unset (data kept
under ``.run/`` in the repo), applies migrations, trains the default model if missing, then
supervises ``projector``, ``CONSUMERS`` x ``consumer`` and ``api`` until Ctrl-C/SIGTERM or
until a role exits on its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from infra.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, spawn

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = REPO_ROOT / ".run"
DEFAULT_MODEL_FILE = "spam-tfidf-lr-v1.json"
# Models trained before the compact form existed lack it; retrained, consumers stay small.
DEFAULT_COMPACT_FILE = "spam-tfidf-lr-v1.npz"
ROLE_STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
CONSUMER_METRICS_BASE_PORT = 9110  # consumer-1 serves /metrics on 9111, consumer-2 on 9112, ...

Server = EmbeddedRedis | EmbeddedPostgres


@dataclass
class Role:
    name: str
    group: str  # "api" | "consumer" | "projector": shutdown is done group by group
    proc: subprocess.Popen[bytes]


def log(message: str) -> None:
    print(f"[infra] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- servers


def ensure_servers(env: dict[str, str], servers: list[Server]) -> None:
    """Start embedded servers for missing URLs (appended to ``servers`` before starting, so
    a Ctrl-C mid-start still stops them); export their URLs into ``env``."""
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(RUN_DIR / "redis")
        servers.append(redis)
        redis.start()
        env["REDIS_URL"] = redis.url
        log(f"embedded Redis (valkey) started: {redis.url}")
    if not env.get("DATABASE_URL"):
        postgres = EmbeddedPostgres(RUN_DIR / "postgres")
        servers.append(postgres)
        postgres.start()
        env["DATABASE_URL"] = postgres.url
        log(f"embedded PostgreSQL started: {postgres.url}")


def stop_servers(servers: list[Server]) -> None:
    for server in reversed(servers):
        server.stop()
        log(f"stopped embedded {server.name}")


# ---------------------------------------------------------------------------- setup steps


def run_step(argv: list[str], env: dict[str, str], what: str) -> None:
    log(f"{what}: {' '.join(argv[1:])}")
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT, check=False)
    if result.returncode != 0:
        raise SystemExit(f"[infra] {what} failed with exit code {result.returncode}")


def migrate(env: dict[str, str]) -> None:
    if not (REPO_ROOT / "alembic.ini").exists():
        log("WARNING: alembic.ini not found, skipping migrations")
        return
    run_step([sys.executable, "-m", "alembic", "upgrade", "head"], env, "migrations")


def module_exists(dotted: str) -> bool:
    base = REPO_ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def ensure_model(env: dict[str, str]) -> None:
    models_dir = Path(env.get("MODELS_DIR") or REPO_ROOT / "models")
    env["MODELS_DIR"] = str(models_dir)
    manifest = models_dir / DEFAULT_MODEL_FILE
    if manifest.exists() and (models_dir / DEFAULT_COMPACT_FILE).exists():
        return
    if not module_exists("classifier.train"):
        log("WARNING: classifier.train not found, skipping model training")
        return
    argv = [sys.executable, "-m", "classifier.train", "--models-dir", str(models_dir)]
    if manifest.exists():
        argv.append("--force")
    run_step(argv, env, "training default model")


# ---------------------------------------------------------------------------- roles


def pump(stream: IO[bytes], prefix: str) -> None:
    """Copy a child's output to our stdout, one prefixed line at a time."""
    out = sys.stdout.buffer
    for line in iter(stream.readline, b""):
        out.write(prefix.encode() + line)
        out.flush()
    stream.close()


def start_role(name: str, group: str, module: str, env: dict[str, str]) -> Role:
    child_env = {**env, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", module]
    proc = spawn(argv, subprocess.PIPE, env=child_env, cwd=REPO_ROOT)
    assert proc.stdout is not None
    width = 12
    threading.Thread(
        target=pump, args=(proc.stdout, f"{name:<{width}}| "), daemon=True, name=f"pump-{name}"
    ).start()
    return Role(name, group, proc)


def consumer_metrics_port(i: int) -> str:
    """Consumer i's /metrics port: consumers share a host here, so each needs its own."""
    return str(CONSUMER_METRICS_BASE_PORT + i)


def start_roles(env: dict[str, str], roles: list[Role]) -> None:
    roles.append(start_role("projector", "projector", "projector", env))
    for i in range(1, int(env.get("CONSUMERS", "2")) + 1):
        consumer_env = {
            **env,
            "CONSUMER_NAME": f"consumer-{i}",
            "METRICS_PORT": consumer_metrics_port(i),
        }
        roles.append(start_role(f"consumer-{i}", "consumer", "consumer", consumer_env))
    roles.append(start_role("api", "api", "api", env))


def stop_group(roles: list[Role]) -> None:
    """SIGTERM every role of a group, wait up to ROLE_STOP_TIMEOUT, then SIGKILL."""
    for role in roles:
        if role.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                role.proc.terminate()
    deadline = time.monotonic() + ROLE_STOP_TIMEOUT
    for role in roles:
        try:
            role.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{role.name} did not stop in {ROLE_STOP_TIMEOUT:.0f} s, killing it")
            role.proc.kill()
            role.proc.wait()


def stop_roles(roles: list[Role]) -> None:
    for group in ("api", "consumer", "projector"):
        members = [r for r in roles if r.group == group]
        if members:
            stop_group(members)
            log(f"stopped {group}")


def watch(roles: list[Role], servers: list[Server]) -> str | None:
    """Block until a signal (returns None) or an unexpected exit (returns a description)."""
    while True:
        for role in roles:
            code = role.proc.poll()
            if code is not None:
                return f"role {role.name} exited unexpectedly with code {code}"
        for server in servers:
            if not server.running():
                return f"embedded {server.name} exited unexpectedly"
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------------- main


def banner(env: dict[str, str]) -> None:
    api_port = env.get("API_PORT", "8000")
    lines = [
        "InferFlow is running",
        f"  API:        http://127.0.0.1:{api_port}",
        f"  Redis:      {env['REDIS_URL']}",
        f"  PostgreSQL: {env['DATABASE_URL']}",
        f"  consumers:  {env.get('CONSUMERS', '2')}",
        f"  metrics:    http://127.0.0.1:{api_port}/metrics, projector :"
        f"{env.get('METRICS_PORT', '9102')}, consumers :{consumer_metrics_port(1)}...",
        "  Ctrl-C to stop",
    ]
    log("\n".join(lines))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run() -> int:
    # Explicit SIGINT handler too: a background job (`make run &`) starts with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    env.setdefault("LOG_FORMAT", "text")  # people read `make run`; deployments keep JSON
    servers: list[Server] = []
    roles: list[Role] = []
    failure: str | None = None
    try:
        ensure_servers(env, servers)
        migrate(env)
        ensure_model(env)
        start_roles(env, roles)
        banner(env)
        failure = watch(roles, servers)
    except KeyboardInterrupt:
        log("interrupted, shutting down")
    except SystemExit as exc:
        failure = str(exc.code)
    except EmbeddedServerError as exc:
        failure = f"embedded server failed: {exc}"
    finally:
        _ignore_signals()
        if failure:
            log(failure)
        stop_roles(roles)
        stop_servers(servers)
    return 1 if failure else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["run"]:
        print("usage: python -m infra run", file=sys.stderr)
        return 2
    return run()
