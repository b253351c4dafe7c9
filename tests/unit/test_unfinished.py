"""Unfinished jobs' answers kept for the reads of the next few milliseconds (api.unfinished),
and the announcements that drop them (api.waiters): without servers."""

from __future__ import annotations

from api.conditional import render
from api.unfinished import UnfinishedJobs
from api.waiters import TerminalListener, Waiters
from domain.events import JobStarted
from tests.unit.test_conditional import later, queued, succeeded


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_reused_for_its_freshness_and_no_longer():
    clock = Clock()
    kept = UnfinishedJobs(fresh_ms=100, timer=clock)
    state = queued()
    answer = render(state)
    kept.remember(state, answer)
    clock.now += 0.099
    assert kept.get(state.job_id) is answer
    clock.now += 0.002
    assert kept.get(state.job_id) is None


def test_a_newer_state_replaces_an_older_one_and_never_the_other_way():
    kept = UnfinishedJobs(fresh_ms=1000)
    first = queued()
    started = later(first, JobStarted, 5, consumer="c", attempt=1)
    kept.remember(started, render(started))
    # A read that began before the other and ended after it.
    kept.remember(first, render(first))
    assert kept.get(first.job_id) == render(started)
    kept.remember(started, render(started))
    assert kept.get(first.job_id) == render(started)


def test_finished_jobs_are_not_kept_here():
    kept = UnfinishedJobs(fresh_ms=1000)
    done = succeeded()
    kept.remember(done, render(done))
    assert kept.get(done.job_id) is None


def test_a_freshness_of_zero_keeps_nothing():
    kept = UnfinishedJobs(fresh_ms=0)
    state = queued()
    kept.remember(state, render(state))
    assert kept.get(state.job_id) is None and len(kept) == 0


def test_forget_drops_only_the_jobs_named():
    kept = UnfinishedJobs(fresh_ms=1000)
    one, two = queued(), queued()
    for state in (one, two):
        kept.remember(state, render(state))
    kept.forget([one.job_id, "not-kept"])
    assert kept.get(one.job_id) is None
    assert kept.get(two.job_id) == render(two)


def listener_of(waiters: Waiters) -> TerminalListener:
    return TerminalListener("redis://127.0.0.1:1/0", False, "terminal", waiters, 1.0)


def test_an_announcement_drops_the_jobs_it_names():
    waiters = Waiters(unfinished_fresh_ms=60_000)
    state = queued()
    waiters.unfinished.remember(state, render(state))
    # Announced by its id alone (as a projector announces large batches).
    listener_of(waiters)._dispatch({"type": "message", "data": state.job_id})
    # Read again from now on rather than answered as queued.
    assert waiters.unfinished.get(state.job_id) is None


def test_a_new_subscription_trusts_no_unfinished_answer():
    waiters = Waiters(unfinished_fresh_ms=60_000)
    state = queued()
    waiters.unfinished.remember(state, render(state))
    listener_of(waiters)._dispatch({"type": "subscribe", "data": 1})
    assert len(waiters.unfinished) == 0
