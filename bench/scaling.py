"""Scaling mode: the same load against 1, 2, 4 consumer processes, a fresh stack for each."""

from __future__ import annotations

from pathlib import Path

from bench.batch import batch
from bench.endtoend import concurrent
from bench.options import Options
from bench.report import Section
from bench.runs import Bench
from bench.stack import running_stack


def scaling(work: Path, options: Options) -> list[Section]:
    """One section per consumer count (printed as it ends), then the table comparing them."""
    runs: list[tuple[int, Section]] = []
    for count in options.scaling_consumers:
        with running_stack(work, count, options.api_workers, env=options.env) as service:
            bench = Bench(service, options)  # no reference: the table compares counts
            try:
                bench.warm_up()
                label = f"scaling, {count} consumer(s)"
                if options.scaling_load == "batch":
                    section = batch(bench, label)
                else:
                    section = concurrent(bench, label)
            finally:
                bench.close()
        section.mode = "scaling"
        section.data["consumers"] = count
        section.print()
        runs.append((count, section))
    return [section for _, section in runs] + [_table(options, runs)]


def _table(options: Options, runs: list[tuple[int, Section]]) -> Section:
    section = Section(f"scaling: {options.scaling_load} load by consumer count", "scaling-table")
    first = runs[0][1].data.get("throughput_jobs_s") if runs else None
    section.row("consumers", "jobs/s   vs first   latency p50/95/99 ms   lost   consumer RSS MB")
    for count, run in runs:
        data = run.data
        throughput = data.get("throughput_jobs_s") or float("nan")
        latency = data.get("terminal_ms") or data.get("log_ms") or {}
        rss = [
            mb
            for name, p in data.get("rss_mb", {}).items()
            if name.startswith("consumer")
            for mb in p["processes"]
        ]
        section.row(
            str(count),
            f"{throughput:6.0f}   {throughput / first if first else float('nan'):7.2f}x   "
            f"{' / '.join(f'{v:.1f}' for v in latency.values()):>20}   "
            f"{data.get('lost', '?'):>4}   {', '.join(f'{mb:.0f}' for mb in rss)}",
        )
    section.data["rows"] = [{"consumers": c, **r.data} for c, r in runs]
    return section
