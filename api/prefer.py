"""The `wait` preference of the Prefer header (RFC 7240): `Prefer: respond-async, wait=5`.

Read leniently, as the RFC asks: a preference the server does not know or cannot read is
ignored, never an error, and only the first occurrence of a preference counts. Quoted values
are unquoted but not parsed further; no preference InferFlow reads needs quoting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HEADER = "Prefer"
APPLIED_HEADER = "Preference-Applied"

_DELTA_SECONDS = re.compile(r"[0-9]+")


def preferences(values: Iterable[str]) -> dict[str, str]:
    """Each preference's value (`""` when it has none) by lowercase name; parameters dropped."""
    found: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            name, _, raw = item.split(";", 1)[0].partition("=")
            name = name.strip().lower()
            if name:
                found.setdefault(name, raw.strip().strip('"'))
    return found


def wait_seconds(values: Iterable[str], limit_s: float) -> float | None:
    """The wait asked for, capped at `limit_s`; None when no readable wait was asked for.

    The RFC's `wait` is whole seconds (delta-seconds); anything else is not a wait preference.
    """
    raw = preferences(values).get("wait", "")
    if not _DELTA_SECONDS.fullmatch(raw):
        return None
    return min(float(raw), limit_s)


def applied_wait(seconds: float) -> str:
    """The Preference-Applied value naming the wait that was honoured."""
    return f"wait={seconds:g}"
