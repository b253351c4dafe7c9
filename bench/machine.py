"""What the numbers were measured on: printed first, so a result never travels without it."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.checkpoint import plain_url


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def server_versions(redis_url: str, database_url: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        info = client.info("server")
        name = "valkey" if "valkey_version" in info else "redis"
        redis_version = f"{name} {info.get('valkey_version') or info.get('redis_version')}"
    finally:
        client.close()
    with psycopg.connect(plain_url(database_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {"redis": redis_version, "postgresql": f"PostgreSQL {row[0] if row else '?'}"}


def describe(redis_url: str, database_url: str) -> dict[str, Any]:
    return {
        "command": shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": round(memory_gb(), 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        **server_versions(redis_url, database_url),
    }
