"""Cancel-After durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.deadlines import deadline, parse_ms


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("90", 90_000),
        ("1.5", 1_500),
        ("45s", 45_000),
        ("1500ms", 1_500),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("1m0.5s", 60_500),
        (" 5m ", 300_000),
    ],
)
def test_durations_read_as_go_writes_them(raw, ms):
    assert parse_ms(raw) == ms


@pytest.mark.parametrize(
    "raw", ["", "s", "0", "999ms", "8d", "30m1h", "5 m", "5x", "1h1h", "-5s", "5s junk", "1e3"]
)
def test_anything_else_is_refused_with_the_rule(raw):
    with pytest.raises(ValueError, match="1s to 7d"):
        parse_ms(raw)


def test_the_deadline_counts_from_acceptance():
    at = datetime(2026, 12, 6, tzinfo=UTC)
    assert deadline(at, 1_500) == at + timedelta(milliseconds=1_500)
    assert deadline(at, None) is None
