"""A job's rendered answer, its entity tag and conditional reads (api.conditional), and the
terminal jobs a process keeps (api.terminal): without servers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api.conditional import Rendered, answer, entity_tag, none_match, render
from api.schemas import JobBody
from api.terminal import TerminalJobs
from domain.events import JobRequested, JobRetrying, JobStarted, JobSucceeded
from domain.ids import new_job_id
from domain.job import JobState, JobStatus, evolve
from readmodel import rows

T0 = datetime(2026, 11, 28, 12, 40, 50, 779284, tzinfo=UTC)


def queued(job_id: str | None = None, tenant: str = "acme") -> JobState:
    event = JobRequested(
        job_id=job_id or new_job_id(),
        occurred_at=T0,
        text="t",
        model_version="m",
        tenant=tenant,
    )
    return evolve(None, event)


def later(state: JobState, event_type: type, ms: int, **fields: object) -> JobState:
    when = T0 + timedelta(milliseconds=ms)
    return evolve(state, event_type(job_id=state.job_id, occurred_at=when, **fields))


def succeeded(job_id: str | None = None, tenant: str = "acme") -> JobState:
    started = later(queued(job_id, tenant), JobStarted, 1, consumer="c", attempt=1)
    return later(
        started,
        JobSucceeded,
        2,
        consumer="c",
        attempt=1,
        label="spam",
        score=0.9,
        probabilities={"ham": 0.1, "spam": 0.9},
        model_version="m",
        inference_ms=1.0,
    )


# The body


@pytest.mark.parametrize("make", [queued, succeeded])
def test_the_rendered_body_is_what_fastapi_sends_for_the_model(make):
    state = make()
    # FastAPI's path: validate the model for the response, dump it as JSON-able, json.dumps.
    expected = JobBody.model_validate(JobBody.of(state)).model_dump(mode="json")
    assert json.loads(render(state).body) == expected


def test_a_rendered_answer_holds_the_tenant_and_whether_it_is_final():
    assert render(queued(tenant="t1")).tenant == "t1"
    assert not render(queued()).terminal
    assert render(succeeded()).terminal


# The tag


def test_every_change_of_state_changes_the_tag():
    job_id = new_job_id()
    first = queued(job_id)
    started = later(first, JobStarted, 1, consumer="c", attempt=1)
    retrying = later(
        started, JobRetrying, 2, consumer="c", attempt=1, error_type="E", error="e", delay_ms=5
    )
    again = later(retrying, JobStarted, 3, consumer="c", attempt=2)
    tags = [entity_tag(state) for state in (first, started, retrying, again)]
    assert len(set(tags)) == len(tags)


def test_a_retry_at_the_same_instant_still_changes_the_tag():
    state = queued()
    assert entity_tag(replace(state, retry_count=1)) != entity_tag(state)
    assert entity_tag(replace(state, attempts=1)) != entity_tag(state)
    assert entity_tag(replace(state, status=JobStatus.CANCELLED)) != entity_tag(state)


def test_one_state_has_one_tag_wherever_it_was_read_from():
    state = succeeded()
    # Through a row of the projection and back, as PostgreSQL or an announcement gives it.
    again = rows.to_state(rows.from_json(rows.to_json(rows.to_row(state, "1-0"))))
    assert entity_tag(again) == entity_tag(state)
    assert render(again).body == render(state).body


def test_the_tag_is_weak_and_quoted():
    tag = entity_tag(queued())
    assert tag.startswith('W/"') and tag.endswith('"')
    assert "," not in tag and " " not in tag


# If-None-Match


@pytest.mark.parametrize(
    "header",
    [
        'W/"abc"',
        '"abc"',  # weak comparison: W/ is not compared
        '"x", W/"abc"',
        '"x",W/"abc" , "y"',
        "*",
        " * ",
    ],
)
def test_if_none_match_names_the_tag(header):
    assert none_match(header, 'W/"abc"')


@pytest.mark.parametrize("header", [None, "", 'W/"abd"', '"ab"', 'W/"abc', "abc", '"a,bc"'])
def test_if_none_match_does_not_name_the_tag(header):
    assert not none_match(header, 'W/"abc"')


def test_a_matching_tag_is_answered_304_without_a_body():
    rendered = render(queued())
    response = answer(rendered, rendered.etag, retry_after_s=1)
    assert response.status_code == 304
    assert response.body == b""
    assert response.headers["etag"] == rendered.etag
    assert response.headers["retry-after"] == "1"


def test_another_tag_is_answered_200_with_the_body():
    rendered = render(queued())
    response = answer(rendered, 'W/"0000"', retry_after_s=2)
    assert response.status_code == 200
    assert response.body == rendered.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == rendered.etag
    assert response.headers["retry-after"] == "2"


def test_retry_after_only_for_a_job_that_has_not_ended_and_only_when_set():
    assert "retry-after" not in answer(render(succeeded()), None, 1).headers
    assert "retry-after" not in answer(render(queued()), None, 0).headers


# The terminal jobs kept


def test_a_terminal_answer_is_kept_and_one_that_can_change_is_not():
    jobs = TerminalJobs(10)
    done, waiting = succeeded(), queued()
    jobs.remember(done.job_id, render(done))
    jobs.remember(waiting.job_id, render(waiting))
    kept = jobs.get(done.job_id)
    assert kept is not None and kept.body == render(done).body
    assert jobs.get(waiting.job_id) is None


def test_the_least_recently_read_goes_first_past_the_bound():
    jobs = TerminalJobs(3)
    states = [succeeded() for _ in range(4)]
    for state in states[:3]:
        jobs.remember(state.job_id, render(state))
    assert jobs.get(states[0].job_id) is not None  # read: now the most recent
    jobs.remember(states[3].job_id, render(states[3]))
    assert len(jobs) == 3
    assert jobs.get(states[1].job_id) is None
    assert all(jobs.get(state.job_id) for state in (states[0], states[2], states[3]))


def test_a_bound_of_zero_keeps_nothing():
    jobs = TerminalJobs(0)
    state = succeeded()
    jobs.remember(state.job_id, render(state))
    jobs.announced({state.job_id: rows.to_json(rows.to_row(state, "1-0"))})
    assert len(jobs) == 0 and jobs.get(state.job_id) is None


def test_an_announced_row_is_answered_as_a_read_would_be_with_its_tenant():
    jobs = TerminalJobs(10)
    state = succeeded(tenant="t2")
    jobs.announced({state.job_id: rows.to_json(rows.to_row(state, "1-0")), new_job_id(): None})
    assert len(jobs) == 1  # an announcement without the row says only "read it"
    kept = jobs.get(state.job_id)
    assert isinstance(kept, Rendered)
    assert kept.tenant == "t2"
    assert kept == render(state)


def test_an_announced_row_that_is_not_a_terminal_row_of_that_job_is_dropped():
    jobs = TerminalJobs(10)
    other, waiting = succeeded(), queued()
    jobs.announced(
        {
            "a-job": rows.to_json(rows.to_row(other, "1-0")),  # another job's row
            waiting.job_id: rows.to_json(rows.to_row(waiting, "1-0")),
            "broken": "{not json",
        }
    )
    assert jobs.get("a-job") is None
    assert jobs.get(waiting.job_id) is None
    assert jobs.get("broken") is None
    assert len(jobs) == 0


def test_an_announcement_does_not_replace_an_answer_kept():
    jobs = TerminalJobs(10)
    state = succeeded()
    jobs.remember(state.job_id, render(state))
    kept = jobs.get(state.job_id)
    jobs.announced({state.job_id: rows.to_json(rows.to_row(state, "1-0"))})
    assert jobs.get(state.job_id) is kept


def test_the_api_keeps_as_many_finished_jobs_as_its_setting_says():
    from api.app import _build_services
    from api.settings import ApiSettings

    settings = ApiSettings(
        terminal_cache_entries=7,
        redis_url="redis://127.0.0.1:1/0",
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        redis_cluster="off",
    )
    assert _build_services(settings).waiters.terminal.max_entries == 7
