"""bench --profile samples a real process with py-spy (bench.profiles)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.profiles import available, profiling

BUSY = """
def spin_for_the_profiler():
    while True:
        sum(i * i for i in range(1000))
spin_for_the_profiler()
"""


@pytest.mark.skipif(not available(), reason="py-spy is not installed")
def test_a_busy_process_is_sampled_in_the_function_it_runs(tmp_path: Path):
    script = tmp_path / "spinner.py"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        time.sleep(0.3)
        with profiling([("spinner", proc.pid)], tmp_path, "01-test") as profiles:
            time.sleep(1.5)
    finally:
        proc.kill()
        proc.wait()
    (profile,) = profiles
    assert profile.role == "spinner"
    assert profile.samples > 50  # 100 Hz for 1.5 s of a busy process
    # Sampled without stopping the process, a stack is now and then cut short.
    assert profile.total["spin_for_the_profiler (spinner.py)"] > 0.5 * profile.samples
    assert profile.top(profile.total, 1)[0][0].endswith("(spinner.py)")
    assert list(tmp_path.glob(f"01-test-spinner-{proc.pid}.txt"))


def test_without_a_directory_nothing_is_sampled():
    with profiling([("api", 1)], None, "01-test") as profiles:
        pass
    assert profiles == []
