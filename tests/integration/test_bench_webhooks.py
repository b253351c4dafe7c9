"""The webhooks bench mode on a real stack at a tiny scale: every message arrives at its
receiver once, and the delay from each job's terminal event is measured (timings are
docs/benchmarks.md's; these are shapes)."""

from __future__ import annotations

import math

from bench.options import parse
from bench.webhooks import webhooks
from tests.support import one_server

pytestmark = one_server("the bench measures one server; the mode itself is the same on a cluster")


def test_the_webhooks_mode_counts_every_delivery_and_its_delay(tmp_path):
    options = parse(
        ["--mode", "webhooks", "--webhook-jobs", "150", "--webhook-rate", "300", "--warmup", "0",
         "--consumers", "1"]
    )  # fmt: skip
    section = webhooks(tmp_path, options)
    data = section.data
    assert data["delivered"] == 150 and data["duplicates"] == 0
    assert data["deliveries_per_s"] > 0
    delay = data["delay_ms"]
    assert 0 < delay["p50"] <= delay["p95"] <= delay["p99"] < 60_000
    assert not math.isnan(delay["p50"])
