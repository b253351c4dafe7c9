"""CPU seconds the stack's processes spend, by role, read from /proc: where a run's time goes.

The roles are the stack's own processes (with their children: the API's workers) and, by
process name, the Redis and PostgreSQL server processes on this machine. Given `Servers`, only
the Redis server of the run's port and, of PostgreSQL, its shared processes (the postmaster,
the writers) and the backends of the run's databases count: another program's clients of a
shared server (tests, another bench) do not. A process that ends during the run takes its CPU
with it; one that starts counts from zero.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from bench.memory import PROC, descendants

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Embedded servers (devstack.embedded) run Valkey, a fork of Redis with its protocol.
SERVERS = {"redis-server": "redis", "valkey-server": "redis", "postgres": "postgres"}

Sample = dict[int, tuple[str, float]]  # pid -> role, CPU seconds so far
# A PostgreSQL backend's title: "postgres: [cluster: ]user database host(port) state".
_BACKEND = re.compile(r"^\S+ (\S+) (?:\S+\(\d+\)|\[local\])")


@dataclass(frozen=True)
class Servers:
    """The server processes a run counts: the Redis servers of `redis_ports`, and PostgreSQL's
    shared processes with the backends of `databases`; None: every one of the kind."""

    redis_ports: frozenset[int] | None = None
    databases: frozenset[str] | None = None

    @classmethod
    def of(cls, redis_url: str, cluster: bool, *database_urls: str) -> Servers:
        # A cluster's nodes are not all named by the URL: every Redis server counts then.
        ports = None if cluster else frozenset({urlsplit(redis_url).port or 6379})
        names = frozenset(make_url(url).database or "" for url in database_urls)
        return cls(ports, names or None)

    def counts(self, name: str, pid: int) -> bool:
        title = _title(pid)
        if SERVERS[name] == "redis":
            ports = self.redis_ports
            return ports is None or any(re.search(rf":{p}\b", title) for p in ports)
        if self.databases is None:
            return True
        backend = _BACKEND.match(title.rsplit(": ", 1)[-1])
        return backend is None or backend.group(1) in self.databases


def _title(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, float] | None:
    """(process name, user + system CPU seconds), or None once the process is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return name, (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def sample(
    roles: Mapping[str, int] | Iterable[tuple[str, int]], servers: Servers | None = None
) -> Sample:
    """CPU so far of each process of `roles` (role -> pid, or (role, pid) pairs where a role
    has several processes; children included) and of the server processes `servers` counts
    (every one, without)."""
    found: Sample = {}
    pairs = roles.items() if isinstance(roles, Mapping) else roles
    for role, pid in pairs:
        for each in [pid, *descendants(pid)]:
            if (stat := _stat(each)) is not None:
                found[each] = (role, stat[1])
    for entry in PROC.iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is None or stat[0] not in SERVERS:
            continue
        if servers is None or servers.counts(stat[0], int(entry.name)):
            found[int(entry.name)] = (SERVERS[stat[0]], stat[1])
    return found


def spent(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each role spent between two samples."""
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        by_role[role] = by_role.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    return by_role
