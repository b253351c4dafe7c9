"""``python -m devstack run``: the local all-in-one runner behind ``make run``.

Starts embedded Redis/PostgreSQL when ``REDIS_URL``/``DATABASE_URL`` are unset (data kept
under ``.run/`` in the repo), applies migrations, trains the default model if missing, then
supervises ``projector``, ``CONSUMERS`` x ``consumer``, ``NOTIFIERS`` x ``notifier`` (1 by
default) and ``api`` until Ctrl-C/SIGTERM or
until a role exits on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from devstack.roles import REPO_ROOT, RoleError, Roles

RUN_DIR = REPO_ROOT / ".run"
DEFAULT_MODEL_FILE = "spam-tfidf-lr-v1.json"
# Models trained before the compact form existed lack it; retrained, consumers stay small.
DEFAULT_COMPACT_FILE = "spam-tfidf-lr-v1.npz"
ROLE_STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
CONSUMER_METRICS_BASE_PORT = 9110  # consumer-1 serves /metrics on 9111, consumer-2 on 9112, ...

Server = EmbeddedRedis | EmbeddedPostgres


def log(message: str) -> None:
    print(f"[devstack] {message}", file=sys.stderr, flush=True)


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
        raise SystemExit(f"[devstack] {what} failed with exit code {result.returncode}")


def migrate(env: dict[str, str]) -> None:
    if not (REPO_ROOT / "alembic.ini").exists():
        log("WARNING: alembic.ini not found, skipping migrations")
        return
    run_step([sys.executable, "-m", "alembic", "upgrade", "head"], env, "migrations")


DEV_KEY_FILE = RUN_DIR / "api-key"


def dev_key_file(env: dict[str, str]) -> Path:
    """Where the development admin key is kept: API_KEY_FILE, else .run/api-key."""
    return Path(env.get("API_KEY_FILE") or DEV_KEY_FILE)


def ensure_dev_key(env: dict[str, str]) -> str | None:
    """The development admin key in .run/api-key: made on the first start (and again for a
    database that does not know it), so that the README's curl examples work. None with
    AUTH_ENABLED off."""
    if env.get("AUTH_ENABLED", "true").lower() in ("false", "0", "no", "off"):
        log("WARNING: AUTH_ENABLED is off: anyone who reaches the API acts as its admin")
        return None
    argv = [sys.executable, "-m", "api", "keys", "dev", "--file", str(dev_key_file(env))]
    result = subprocess.run(
        argv, env=env, cwd=REPO_ROOT, check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"[devstack] development API key failed: {result.stderr.strip()}")
    return result.stdout.strip()


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


def consumer_metrics_port(i: int) -> str:
    """Consumer i's /metrics port: consumers share a host here, so each needs its own."""
    return str(CONSUMER_METRICS_BASE_PORT + i)


def watch(roles: Roles, servers: list[Server]) -> str | None:
    """Block until a signal (returns None) or an unexpected exit (returns a description)."""
    while True:
        if exited := roles.exited():
            name, code = next(iter(exited.items()))
            return f"role {name} exited unexpectedly with code {code}"
        for server in servers:
            if not server.running():
                return f"embedded {server.name} exited unexpectedly"
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------------- main


def banner(env: dict[str, str], key: str | None) -> None:
    api_port = env.get("API_PORT", "8000")
    shown = (
        f"{key}  (in {DEV_KEY_FILE.relative_to(REPO_ROOT)})" if key else "none: AUTH_ENABLED off"
    )
    lines = [
        "InferFlow is running",
        f"  API:        http://127.0.0.1:{api_port}",
        f"  admin key:  {shown}",
        f"  Redis:      {env['REDIS_URL']}",
        f"  PostgreSQL: {env['DATABASE_URL']}",
        f"  consumers:  {env.get('CONSUMERS', '2')}",
        f"  notifiers:  {env.get('NOTIFIERS', '1')} (webhooks)",
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
    roles: Roles | None = None
    failure: str | None = None
    try:
        ensure_servers(env, servers)
        migrate(env)
        key = ensure_dev_key(env)
        ensure_model(env)
        roles = Roles(env, stop_timeout=ROLE_STOP_TIMEOUT, report=log)
        roles.start_all(
            int(env.get("CONSUMERS", "2")),
            first=1,
            metrics_base=CONSUMER_METRICS_BASE_PORT,
            notifiers=int(env.get("NOTIFIERS", "1")),
        )
        banner(env, key)
        failure = watch(roles, servers)
    except KeyboardInterrupt:
        log("interrupted, shutting down")
    except SystemExit as exc:
        failure = str(exc.code)
    except EmbeddedServerError as exc:
        failure = f"embedded server failed: {exc}"
    except RoleError as exc:
        failure = f"role failed: {exc}"
    finally:
        _ignore_signals()
        if failure:
            log(failure)
        if roles is not None:
            roles.stop_all()
        stop_servers(servers)
    return 1 if failure else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["run"]:
        print("usage: python -m devstack run", file=sys.stderr)
        return 2
    return run()
