"""CPU seconds the stack's processes spend, by role, read from /proc: where a run's time goes.

The roles are the stack's own processes (with their children: the API's workers) and, by
process name, every Redis and PostgreSQL server process on this machine. A process that ends
during the run takes its CPU with it; one that starts counts from zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from bench.memory import PROC, descendants

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SERVERS = {"redis-server": "redis", "postgres": "postgres"}

Sample = dict[int, tuple[str, float]]  # pid -> role, CPU seconds so far


def _stat(pid: int) -> tuple[str, float] | None:
    """(process name, user + system CPU seconds), or None once the process is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return name, (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def sample(roles: Mapping[str, int] | Iterable[tuple[str, int]]) -> Sample:
    """CPU so far of each process of `roles` (role -> pid, or (role, pid) pairs where a role
    has several processes; children included) and of every server process."""
    found: Sample = {}
    pairs = roles.items() if isinstance(roles, Mapping) else roles
    for role, pid in pairs:
        for each in [pid, *descendants(pid)]:
            if (stat := _stat(each)) is not None:
                found[each] = (role, stat[1])
    for entry in PROC.iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] in SERVERS:
            found[int(entry.name)] = (SERVERS[stat[0]], stat[1])
    return found


def spent(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each role spent between two samples."""
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        by_role[role] = by_role.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    return by_role
