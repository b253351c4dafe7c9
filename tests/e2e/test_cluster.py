"""InferFlow on a real Redis Cluster: pointing REDIS_URL at a node is all it takes. Jobs of a
log of four partitions go in (single, keyed, batch) and out on every master; timelines and
/ready read every partition; and where a partition has no master, /ready says so and POST
answers 503 (never a 202)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from redis.cluster import RedisCluster

from devstack.cluster import LocalCluster
from domain.ids import partition_of
from eventlog.lanes import known_lanes
from eventlog.names import Names
from tests.e2e.conftest import ServiceFactory

pytestmark = pytest.mark.e2e

PARTITIONS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas=0) as running:
        yield running


def test_jobs_flow_through_every_partition_of_a_cluster(
    make_service: ServiceFactory, cluster: LocalCluster
):
    service = make_service(redis_url=cluster.url, PARTITIONS=str(PARTITIONS))
    service.start_all(consumers=2)
    ready = service.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]["projector"]["checkpoints"]) == {"0", "1", "2", "3"}

    singles = [service.submit(f"single {i}").json()["job_id"] for i in range(40)]
    keyed = service.submit("keyed", headers={"Idempotency-Key": "cluster-key"})
    again = service.submit("keyed", headers={"Idempotency-Key": "cluster-key"})
    assert keyed.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["job_id"] == keyed.json()["job_id"]
    items = [{"text": f"batch {i}"} for i in range(600)]
    batch = service.http.post("/v1/inference/batch", json={"items": items}, timeout=30)
    assert batch.status_code == 202, batch.text
    batched = [item["job_id"] for item in batch.json()["items"]]
    jobs = [*singles, keyed.json()["job_id"], *batched]

    spread = Counter(partition_of(job_id) for job_id in jobs)
    assert sorted(spread) == list(range(PARTITIONS)), spread
    for job_id in jobs:
        assert service.wait_terminal(job_id, timeout_s=60)["status"] == "succeeded"
    timeline = service.http.get(f"/v1/jobs/{singles[0]}/events").json()["events"]
    assert [e["type"] for e in timeline] == ["JobRequested", "JobStarted", "JobSucceeded"]

    # Each partition's events are in its own lanes' streams, all of them in its one slot (the
    # batch's in a bulk lane, the singles' in the default one).
    names = Names(service.env["STREAM_PREFIX"])
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        slots = {client.keyslot(names.events(p)) for p in range(PARTITIONS)}
        assert len(slots) == PARTITIONS
        logged = Counter()
        for p in range(PARTITIONS):
            lanes = known_lanes(client, names, p)
            assert {client.keyslot(names.lane(p, lane)) for lane in lanes} == {
                client.keyslot(names.events(p))
            }
            for lane in lanes:
                for _, fields in client.xrange(names.lane(p, lane)):
                    assert partition_of(fields["job_id"]) == p
                    logged[fields["type"]] += 1
    finally:
        client.close()
    assert logged == {"JobRequested": len(jobs), "JobStarted": len(jobs), "JobSucceeded": len(jobs)}


def test_ready_is_503_while_a_partition_has_no_master(
    make_service: ServiceFactory, cluster: LocalCluster
):
    service = make_service(redis_url=cluster.url, PARTITIONS=str(PARTITIONS))
    service.start_all(consumers=1)
    assert service.http.get("/ready").status_code == 200
    victim = cluster.masters()[-1]
    cluster.kill(victim)  # no replica to take over: its slots have no master
    accepted, answers = [], Counter()
    try:
        deadline = time.monotonic() + 30
        while (ready := service.http.get("/ready")).status_code != 503:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        assert ready.json()["checks"]["redis"]["status"] == "down"
        # Once the cluster marks the master failed, it refuses every command (full coverage
        # is required): no submission may look accepted from then on.
        deadline = time.monotonic() + 30
        while answers[503] == 0:
            assert time.monotonic() < deadline, answers
            reply = service.submit("while a master is gone")
            answers[reply.status_code] += 1
            if reply.status_code == 202:
                accepted.append(reply.json()["job_id"])
            time.sleep(0.05)
        assert set(answers) <= {202, 503}, answers
    finally:
        cluster.restart(victim)
        cluster.wait_healthy()
    deadline = time.monotonic() + 30
    while (ready := service.http.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.2)
    after = service.submit("after the master came back")
    assert after.status_code == 202
    # What was accepted while the master was failing is still done: nothing a 202 promised
    # was lost.
    for job_id in [*accepted, after.json()["job_id"]]:
        assert service.wait_terminal(job_id, timeout_s=60)["status"] == "succeeded"
