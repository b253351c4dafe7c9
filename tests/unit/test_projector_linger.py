"""When the live projector waits before its next read (LINGER_MS)."""

from __future__ import annotations

import pytest

from projector.runner import LINGER_MIN_ENTRIES, linger_s


@pytest.mark.parametrize("applied", [0, 1, LINGER_MIN_ENTRIES - 1])
def test_a_quiet_log_is_read_again_at_once(applied):
    assert linger_s(applied, linger_ms=20) == 0.0


def test_a_busy_log_waits_a_millisecond_per_entry_up_to_the_cap():
    assert linger_s(LINGER_MIN_ENTRIES, linger_ms=20) == LINGER_MIN_ENTRIES / 1000
    assert linger_s(12, linger_ms=20) == 0.012
    assert linger_s(2000, linger_ms=20) == 0.020


def test_off_by_default_means_never():
    assert linger_s(2000, linger_ms=0) == 0.0
