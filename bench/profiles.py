"""Where each role's CPU goes during a measured run: py-spy samples every role's process (its
children too: the API's workers) while the load runs, and the stacks are summed by function.

`--profile DIR` turns it on. py-spy reads the processes from outside, so the roles run their
ordinary code; its sampling (100 Hz) costs the load little. A role's samples are written as
py-spy's collapsed stacks (`DIR/<run>-<role>.txt`, one line per stack and its count, for any
flame graph tool) and summarised in the report: each role's busiest functions, by the share of
the role's samples in which they were running (self) or on the stack (total).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 100


@dataclass
class Profile:
    """A role's samples, summed by function ("name (file)"). Only the thread holding the GIL
    is sampled, so every sample is of Python at work (a C call made under the GIL included)."""

    role: str
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)

    def add(self, stack: str, count: int) -> None:
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            return
        self.samples += count
        self.own[frames[-1]] += count
        for name in set(frames):
            self.total[name] += count

    def top(self, counter: Counter[str], n: int) -> list[tuple[str, float]]:
        """The `n` largest entries of `counter`, as shares of the role's samples, leaving out
        the frames every stack passes through (the process, its threads, the event loop)."""
        shown = ((name, count) for name, count in counter.most_common() if not _frame(name))
        return [(name, count / self.samples) for name, count in list(shown)[:n]]


# Frames that are on (nearly) every stack of a role: they tell nothing of where the time goes.
_FRAMES = {"<frozen runpy>", "threading.py", "runners.py", "_compat.py", "main.py", "server.py"}
_FRAMES |= {"__main__.py", "base_events.py", "events.py", "fleet.py", "thread.py"}


def _frame(name: str) -> bool:
    where = name.rpartition(" (")[2].rstrip(")")
    return name.startswith("process ") or where in _FRAMES


def _function(frame: str) -> str:
    # "name (path/to/file.py:line)" -> "name (file.py)": lines apart would split one function.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(path).name})" if path else name


def read(role: str, files: Iterable[Path]) -> Profile:
    profile = Profile(role)
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                profile.add(stack, int(count))
    return profile


def executable() -> str | None:
    """py-spy on PATH, else beside this Python (a virtualenv that is not activated, as under
    `make`)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else None)


def available() -> bool:
    return executable() is not None


@contextmanager
def profiling(
    roles: Iterable[tuple[str, int]], directory: Path | None, run: str
) -> Iterator[list[Profile]]:
    """Sample `roles` ((role, pid) pairs) for the block; the yielded list holds each role's
    profile once the block is over (stays empty when `directory` is None)."""
    profiles: list[Profile] = []
    if directory is None:
        yield profiles
        return
    if not available():
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    directory.mkdir(parents=True, exist_ok=True)
    samplers: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for role, pid in roles:
        out = directory / f"{run}-{role}-{pid}.txt"
        command = [str(executable()), "record", "--pid", str(pid), "--rate", str(RATE_HZ)]
        command.append("--subprocesses")
        # --gil: only the thread running Python code is sampled, so a thread woken and waiting
        # for a core (every role, on a saturated box) is not counted as working.
        command += ["--gil", "--format", "raw", "--output", str(out), "--nonblocking"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samplers.append((role, out, proc))
    try:
        yield profiles
    finally:
        for _, _, proc in samplers:
            proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        for _, _, proc in samplers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        by_role: dict[str, list[Path]] = {}
        for role, out, _ in samplers:
            if out.exists():
                by_role.setdefault(role, []).append(out)
        profiles.extend(read(role, files) for role, files in sorted(by_role.items()))


def summary(profiles: Iterable[Profile], n: int = 12) -> list[str]:
    """Lines for the report: each role's busiest functions, self and total."""
    lines: list[str] = []
    for profile in profiles:
        if not profile.samples:
            continue
        cpu_s = profile.samples / RATE_HZ
        lines.append(f"{profile.role}: {profile.samples} samples (about {cpu_s:.1f} s of CPU)")
        for name, fraction in profile.top(profile.own, n):
            lines.append(f"  self  {fraction:6.1%}  {name}")
        for name, fraction in profile.top(profile.total, n):
            lines.append(f"  total {fraction:6.1%}  {name}")
    return lines
