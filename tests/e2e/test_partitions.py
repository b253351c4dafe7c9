"""A partitioned log end to end: PARTITIONS raised on a running deployment under load, and
projectors that share partitions by leases, one active per partition, a standby taking over.

Both audited from the log and the database, not from what the API says."""

from __future__ import annotations

import time

import pytest

from tests.e2e.audit import audit, wait_all_terminal
from tests.e2e.conftest import ServiceFactory
from tests.e2e.load import KeyedLoad

pytestmark = pytest.mark.e2e


def test_raising_the_partitions_under_load_loses_and_doubles_nothing(
    make_service: ServiceFactory,
):
    service = make_service(PARTITIONS="2")
    service.start_all(consumers=2)
    with KeyedLoad(service.url, service.admin_key) as load:
        time.sleep(1.5)
        # Readers first: they serve the new, empty partitions before any job goes there.
        for name, role in (("projector", "projector"), ("consumer-0", "consumer")):
            service.stop(name)
            service.start(role, name, PARTITIONS="4")
        service.stop("consumer-1")
        service.start("consumer", "consumer-1", PARTITIONS="4")
        time.sleep(1)
        # Then the API, which from now on places new jobs in all four.
        service.stop("api")
        service.env["PARTITIONS"] = "4"
        service.start("api")
        time.sleep(2)
    assert load.unexpected == []
    accepted = set(load.accepted.values())
    assert len(accepted) == len(load.accepted), "two keys named one job"
    wait_all_terminal(service, accepted)
    spread = audit(service, accepted, partitions=4)
    assert spread[2] > 0 and spread[3] > 0, spread
    assert spread[0] > 0 and spread[1] > 0, spread


def test_one_projector_projects_each_partition_and_a_standby_takes_over(
    make_service: ServiceFactory,
):
    service = make_service(PARTITIONS="3", LEASE_RETRY_MS="200")
    service.start("projector", "projector-a")
    time.sleep(1)  # a takes every lease
    service.start("projector", "projector-b")
    service.start_consumers(1)
    service.start("api")
    first = {service.submit(f"before {i}").json()["job_id"] for i in range(30)}
    wait_all_terminal(service, first)
    a, b = service.logs("projector-a"), service.logs("projector-b")
    for p in range(3):
        assert f"projecting partition {p}" in a
        assert f"projecting partition {p}" not in b, "two projectors hold one partition"
    service.kill("projector-a")
    second = {service.submit(f"after {i}").json()["job_id"] for i in range(30)}
    wait_all_terminal(service, second)
    b = service.logs("projector-b")
    for p in range(3):
        assert f"projecting partition {p}" in b
    audit(service, first | second, partitions=3)


def test_projectors_with_a_limit_share_the_partitions_out(make_service: ServiceFactory):
    service = make_service(PARTITIONS="4", LEASE_RETRY_MS="200", PROJECTOR_MAX_PARTITIONS="2")
    service.start("projector", "projector-a")
    service.start("projector", "projector-b")
    service.start_consumers(1)
    service.start("api")
    jobs = {service.submit(f"shared {i}").json()["job_id"] for i in range(40)}
    wait_all_terminal(service, jobs)
    held = {
        name: {p for p in range(4) if f"projecting partition {p}" in service.logs(name)}
        for name in ("projector-a", "projector-b")
    }
    assert len(held["projector-a"]) == len(held["projector-b"]) == 2, held
    assert held["projector-a"].isdisjoint(held["projector-b"]), held
    audit(service, jobs, partitions=4)
