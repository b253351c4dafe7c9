"""The bench's CPU accounting by role, from /proc."""

from __future__ import annotations

import os
import time

from bench.cpu import sample, spent


def test_a_role_is_charged_the_cpu_its_process_spends():
    before = sample({"me": os.getpid()})
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    used = spent(before, sample({"me": os.getpid()}))
    assert used["me"] >= 0.04


def test_processes_that_started_count_from_zero_and_ended_ones_drop_out():
    before = {1: ("api", 5.0), 2: ("consumers", 1.0), 3: ("consumers", 9.0)}
    after = {1: ("api", 5.5), 2: ("consumers", 1.25), 4: ("consumers", 0.5)}
    assert spent(before, after) == {"api": 0.5, "consumers": 0.75}


def test_every_process_of_a_role_counts():
    # Two consumers are one role: both pids must be sampled, not the last one alone.
    me = os.getpid()
    parent = os.getppid()
    found = sample([("consumers", me), ("consumers", parent)])
    assert {pid for pid, (role, _) in found.items() if role == "consumers"} >= {me, parent}
