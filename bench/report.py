"""Numbers into text and JSON: percentiles, and sections printed as they are measured."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUANTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def quantiles_ms(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{q}": round(percentile(ordered, q) * 1000, 3) for q in QUANTILES}


def ms(values: Sequence[float]) -> str:
    """'p50 / p95 / p99' in milliseconds."""
    return " / ".join(f"{v:.1f}" for v in quantiles_ms(values).values())


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def counts(mapping: Mapping[Any, int]) -> str:
    return ", ".join(f"{n} x {key}" for key, n in sorted(mapping.items(), key=str)) or "none"


@dataclass
class Section:
    """One measured run: printed as `## title` and aligned rows, kept as data for --json."""

    title: str
    mode: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    printed: bool = False

    def row(self, label: str, text: str) -> None:
        self.rows.append((label, text))

    def print(self) -> None:
        self.printed = True
        print(f"\n## {self.title}")
        width = max((len(label) for label, _ in self.rows), default=0)
        for label, text in self.rows:
            print(f"{label.ljust(width)}  {text}", flush=True)


def _clean(value: Any) -> Any:
    # JSON has no NaN: a value that could not be measured is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, machine: Mapping[str, Any], sections: Sequence[Section]) -> None:
    document = {
        "machine": machine,
        "runs": [{"title": s.title, "mode": s.mode, **s.data} for s in sections],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(document), indent=2, default=str) + "\n")
