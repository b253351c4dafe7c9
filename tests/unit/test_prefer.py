"""The Prefer header's `wait` preference (RFC 7240), read leniently."""

from __future__ import annotations

import pytest

from api.prefer import applied_wait, preferences, wait_seconds

LIMIT = 60.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["wait=5"], 5.0),
        (["respond-async, wait=5"], 5.0),
        (["wait=5, respond-async"], 5.0),
        (["respond-async", "wait=7"], 7.0),  # one preference per header line
        (["WAIT = 3"], 3.0),  # names are case-insensitive, spaces around = allowed (BWS)
        (['wait="4"'], 4.0),
        (["wait=5;foo=bar"], 5.0),  # parameters are ignored
        (["handling=lenient; x, wait=2, return=minimal"], 2.0),
        (["wait=0"], 0.0),
        (["wait=1000"], LIMIT),  # capped, not refused
        (["wait=" + "9" * 400], LIMIT),
        (["wait=2, wait=9"], 2.0),  # the first occurrence counts
    ],
)
def test_a_readable_wait_is_found(values: list[str], expected: float):
    assert wait_seconds(values, LIMIT) == expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ["respond-async"],
        ["wait"],
        ["wait="],
        ["wait=-1"],
        ["wait=1.5"],  # delta-seconds are whole seconds
        ["wait=abc"],
        ["wait=\uff15"],  # FULLWIDTH DIGIT FIVE: a digit to str.isdigit, not to HTTP
        ["wait=abc, wait=5"],  # the first occurrence counts, even unreadable
        [",,;;==,"],
        ["waiting=5"],
    ],
)
def test_anything_else_is_no_wait(values: list[str]):
    assert wait_seconds(values, LIMIT) is None


def test_the_limit_applies():
    assert wait_seconds(["wait=30"], 10.0) == 10.0


def test_preferences_lists_names_and_values():
    found = preferences(["Respond-Async, wait=5; x=y", "return=minimal, wait=9"])
    assert found == {"respond-async": "", "wait": "5", "return": "minimal"}


def test_the_applied_wait_is_whole_seconds_when_it_can_be():
    assert applied_wait(60.0) == "wait=60"
    assert applied_wait(2.5) == "wait=2.5"
