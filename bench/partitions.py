"""Partitions mode: batch load against a log of 1, 2, 4, 8 partitions, with as many projector
processes as partitions (each its own, `PROJECTOR_PARTITIONS`), on one Redis server and on a
local Redis Cluster of 3 masters; a fresh stack for each, the same load, side by side."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.batch import batch
from bench.options import Options
from bench.report import Section
from bench.runs import Bench
from bench.stack import running_stack
from devstack.cluster import LocalCluster


@contextmanager
def _topology(kind: str) -> Iterator[dict[str, str]]:
    """The environment that points a stack at the topology: nothing for the bench's server."""
    if kind == "server":
        yield {}
        return
    with (
        tempfile.TemporaryDirectory(prefix="inferflow-bench-cluster-") as tmp,
        LocalCluster(Path(tmp), masters=3, replicas=0) as cluster,
    ):
        yield {"REDIS_URL": cluster.url}


def partitions(work: Path, options: Options) -> list[Section]:
    runs: list[tuple[str, int, Section]] = []
    for kind in options.partitions_on:
        with _topology(kind) as redis_env:
            for count in options.partitions:
                env = {**options.env, **redis_env, "PARTITIONS": str(count)}
                roles = ("consumers", "api")
                with running_stack(
                    work, options.consumers, options.api_workers, roles, env=env
                ) as service:
                    for p in range(count):
                        service.start("projector", f"projector-{p}", PROJECTOR_PARTITIONS=str(p))
                    bench = Bench(service, options)
                    try:
                        bench.warm_up()
                        section = batch(bench, f"partitions: {count} on one {kind}")
                    finally:
                        bench.close()
                section.mode = "partitions"
                section.data.update(partitions=count, topology=kind)
                section.print()
                runs.append((kind, count, section))
    return [section for *_, section in runs] + [_table(runs)]


def _table(runs: list[tuple[str, int, Section]]) -> Section:
    section = Section("partitions: batch load by partition count and topology", "partitions-table")
    section.row(
        "topology, P",
        "accepted jobs/s   projected jobs/s   vs P=1   CPU ms/job (api, consumers, projectors)",
    )
    first: dict[str, float] = {}
    for kind, count, run in runs:
        data = run.data
        projected = data.get("throughput_jobs_s") or float("nan")
        first.setdefault(kind, projected)
        cpu = data.get("cpu_ms_per_job", {})
        parts = " / ".join(
            f"{cpu.get(role, float('nan')):.2f}" for role in ("api", "consumers", "projectors")
        )
        section.row(
            f"{kind}, {count}",
            f"{data.get('accept_rate', float('nan')):8.0f}   {projected:8.0f}   "
            f"{projected / first[kind]:6.2f}x   {parts}",
        )
    section.data["rows"] = [{"topology": k, "partitions": c, **r.data} for k, c, r in runs]
    return section
