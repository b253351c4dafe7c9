"""A Redis Cluster master dies: its replica takes over, the roles follow the new topology, and
with SUBMIT_REPLICAS=1 no accepted job is lost, under load or right after its 202: the 202 is
held until the replica has the job (a replica stopped for half a second holds it that long).
With OUTCOME_REPLICAS=1 as well, the projection equals the fold of the log after the failover.

The cluster: 3 masters with a replica each, a node timeout of 2 s (devstack.cluster)."""

from __future__ import annotations

import threading
import time

import pytest

from devstack.cluster import LocalCluster
from tests.e2e.audit import audit, wait_all_terminal
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.e2e.load import KeyedLoad

pytestmark = pytest.mark.e2e

# Long enough for a WAIT that must outlast a paused replica, and a failover's redirects.
SLOW = {"DEPENDENCY_TIMEOUT_MS": "5000", "SUBMIT_REPLICAS_TIMEOUT_MS": "3000"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("replicated"), masters=3, replicas=1) as running:
        yield running


def wait_accepted(load: KeyedLoad, jobs: int, timeout_s: float = 60) -> int:
    """Wait until the load has had `jobs` 202s; how many it has."""
    deadline = time.monotonic() + timeout_s
    while len(load.accepted) < jobs:
        assert time.monotonic() < deadline, f"only {len(load.accepted)} of {jobs} jobs accepted"
        time.sleep(0.05)
    return len(load.accepted)


def fail_over(cluster: LocalCluster, master: int) -> None:
    """Kill `master`, wait for its replica to take over, and bring it back (as a replica)."""
    cluster.kill(master)
    cluster.wait_healthy()
    cluster.restart(master)
    cluster.wait_healthy()


def test_a_master_killed_under_load_loses_and_doubles_nothing(
    make_service: ServiceFactory, cluster: LocalCluster
):
    service = make_service(
        redis_url=cluster.url,
        PARTITIONS="3",
        SUBMIT_REPLICAS="1",
        OUTCOME_REPLICAS="1",  # so the projection never holds an event the failover took back
        OUTCOME_REPLICAS_TIMEOUT_MS="3000",
        **SLOW,
    )
    service.start_all(consumers=2)
    victim = cluster.master_of(service.names.events(0))
    with KeyedLoad(service.url, service.admin_key, give_up_s=60) as load:
        # Counted rather than timed: on a busy machine the load is slower, never thinner.
        before = wait_accepted(load, 25)
        fail_over(cluster, victim)
        wait_accepted(load, before + 25)
    assert load.unexpected == []
    accepted = set(load.accepted.values())
    assert len(accepted) >= 50
    wait_all_terminal(service, accepted)
    audit(service, accepted, partitions=3)


def submit_while_the_replica_lags(
    service: Service, cluster: LocalCluster, master: int, lag_s: float
) -> str:
    """Pause the master's replica, submit, resume it `lag_s` later; the job id of the 202."""
    (replica,) = cluster.replicas_of(master)
    cluster.pause(replica)
    resume = threading.Timer(lag_s, cluster.resume, args=(replica,))
    resume.start()
    try:
        with service.client(service.admin_key) as client:
            reply = client.post("/v1/inference", json={"text": "replicated?"})
    finally:
        resume.join()
    assert reply.status_code == 202, reply.text
    return str(reply.json()["job_id"])


def on_the_log(service: Service, job_id: str) -> bool:
    return any(fields.get("job_id") == job_id for _, fields in service.log())


def test_with_replica_acks_a_master_killed_right_after_a_202_loses_no_job(
    make_service: ServiceFactory, cluster: LocalCluster
):
    service = make_service(redis_url=cluster.url, SUBMIT_REPLICAS="1", **SLOW)
    service.start("api")
    master = cluster.master_of(service.names.events(0))
    began = time.monotonic()
    job_id = submit_while_the_replica_lags(service, cluster, master, lag_s=0.5)
    # The 202 waited for the replica to come back and take the write.
    assert time.monotonic() - began >= 0.5
    fail_over(cluster, master)
    assert on_the_log(service, job_id)
    service.start_consumers(1)
    service.start("projector")
    assert service.wait_terminal(job_id, timeout_s=60)["status"] == "succeeded"
