"""Old schema versions are upcast to the current one when decoded."""

from __future__ import annotations

import pytest

from domain import upcasting
from domain.errors import InvalidEventError
from domain.events import JobRequested, decode, encode
from domain.tenants import DEFAULT_TENANT

JOB = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
V0 = {"type": "JobRequested", "v": "0", "job_id": JOB, "occurred_at": "2026-11-28T12:00:00Z",
      "text": "hello"}  # fmt: skip


def add_model_version(fields):
    """A synthetic v0 of JobRequested had no model_version: it ran the default model."""
    return {**fields, "model_version": "spam-tfidf-lr-v1"}


def test_an_old_version_is_upcast_to_the_current_one():
    # v0 -> v1 by the synthetic upcaster, then v1 -> v2 by the real one (the tenant).
    with upcasting.registered("JobRequested", 0, add_model_version):
        event = decode(V0)
    assert event == JobRequested(
        job_id=JOB,
        occurred_at=event.occurred_at,
        text="hello",
        model_version="spam-tfidf-lr-v1",
        tenant=DEFAULT_TENANT,
    )


def test_a_request_from_before_tenants_is_the_default_tenants():
    v1 = {**V0, "v": "1", "model_version": "m", "traceparent": ""}
    event = decode(v1)
    assert isinstance(event, JobRequested)
    assert event.tenant == DEFAULT_TENANT == "default"


def test_a_request_keeps_its_tenant_on_the_wire():
    event = JobRequested(
        job_id=JOB, occurred_at=decode({**V0, "v": "1", "model_version": "m"}).occurred_at,
        text="t", model_version="m", tenant="acme",
    )  # fmt: skip
    fields = encode(event)
    assert fields["v"] == "4" and fields["tenant"] == "acme"
    assert decode(fields) == event


def test_a_request_from_before_batches_is_of_no_batch_and_has_no_deadline():
    v2 = {**V0, "v": "2", "model_version": "m", "traceparent": "", "tenant": "acme"}
    v2["lane"] = "bulk"
    event = decode(v2)
    assert isinstance(event, JobRequested)
    assert (event.tenant, event.lane) == ("acme", "bulk")
    assert (event.batch_id, event.custom_id, event.deadline) == ("", "", None)


def test_without_an_upcaster_the_old_version_is_refused():
    with pytest.raises(InvalidEventError, match="unsupported schema version '0'"):
        decode(V0)


def test_a_chain_of_upcasters_runs_in_order():
    seen = []

    def step(version):
        def upcast(fields):
            seen.append(version)
            return dict(fields)

        return upcast

    # A type of its own, as if its current version were 2: v0 -> v1 -> v2.
    with (
        upcasting.registered("Synthetic", 0, lambda f: add_model_version(step(0)(f))),
        upcasting.registered("Synthetic", 1, step(1)),
    ):
        fields = upcasting.upcast(V0, "Synthetic", 2)
    assert seen == [0, 1]
    assert fields["v"] == "2"
    assert fields["model_version"] == "spam-tfidf-lr-v1"


@pytest.mark.parametrize("version", ["2", "01", " 1", "", "x"])
def test_versions_newer_or_not_canonical_are_refused(version):
    with pytest.raises(InvalidEventError, match="unsupported schema version"):
        upcasting.upcast({**V0, "v": version}, "JobRequested", 1)


def test_an_upcaster_cannot_be_registered_twice():
    with (
        upcasting.registered("JobRequested", 0, add_model_version),
        pytest.raises(ValueError, match="already registered"),
    ):
        upcasting.register("JobRequested", 0, add_model_version)
