"""devstack.cluster: a real Redis Cluster on this machine, as the cluster tests need it."""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster

from devstack.cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(tmp_path / "cluster", masters=3, replicas=1) as running:
        yield running


def test_three_masters_with_a_replica_each_serve_every_slot(cluster: LocalCluster):
    assert len(cluster.masters()) == 3 and len(cluster.replicas()) == 3
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        for i in range(300):  # keys across all three masters
            client.set(f"key:{i}", i)
        owners = {client.get_node_from_key(f"key:{i}").port for i in range(300)}
        assert owners == set(cluster.masters())
        assert all(client.get(f"key:{i}") == str(i) for i in range(300))
    finally:
        client.close()


def test_a_killed_master_is_replaced_by_its_replica_and_rejoins_as_one(cluster: LocalCluster):
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        for i in range(100):
            client.set(f"kept:{i}", i)
        # Replication is asynchronous: wait until a replica has it, as WAIT does for a write.
        for node in client.get_primaries():
            client.execute_command("WAIT", 1, 5000, target_nodes=node)
        victim = cluster.masters()[0]
        cluster.kill(victim)
        began = time.monotonic()
        cluster.wait_healthy()
        assert time.monotonic() - began < 15
        assert victim not in cluster.masters() and len(cluster.masters()) == 3
        cluster.restart(victim)
        deadline = time.monotonic() + 15
        while victim not in cluster.replicas() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim in cluster.replicas()
    finally:
        client.close()
    survivor = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        assert all(survivor.get(f"kept:{i}") == str(i) for i in range(100))
    finally:
        survivor.close()
