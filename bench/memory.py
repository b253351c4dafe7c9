"""Resident memory of the stack's processes (and their children) and of Redis, from /proc."""

from __future__ import annotations

from pathlib import Path

import redis

PROC = Path("/proc")


def rss_mb(pid: int) -> float:
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return float("nan")  # gone
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _parent(pid: str) -> int:
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return 0
    # The name field may hold spaces and parentheses: the parent pid follows the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (uvicorn's workers, multiprocessing helpers)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            children.setdefault(_parent(entry.name), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def tree_rss_mb(pid: int) -> dict[int, float]:
    """RSS of `pid` and of each process below it, by pid."""
    return {p: rss_mb(p) for p in [pid, *descendants(pid)]}


def redis_used_mb(client: redis.Redis) -> float:
    return int(client.info("memory")["used_memory"]) / 2**20
