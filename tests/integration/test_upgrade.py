"""`python -m projector upgrade-log`: a log written before partitions, moved to partition 0's
names, is read by the new release as if it had always been there."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from domain.events import JobRequested, encode
from eventlog.names import LegacyNames
from eventlog.upgrade import Upgraded, UpgradeRefusedError, upgrade
from tests.support import MODEL_VERSION, log_events, one_server, succeeded

pytestmark = one_server("a log from before partitions was only ever on one server")

# A UUIDv7, as the releases before partitions made them.
OLD_JOB = "01931f2e-8c4d-7fff-bd2a-6c1e9f0a4b3c"


def write_legacy_log(client, prefix: str) -> None:
    legacy = LegacyNames(prefix)
    now = datetime.now(UTC)
    requested = JobRequested(job_id=OLD_JOB, occurred_at=now, text="t", model_version=MODEL_VERSION)
    entry_id = client.xadd(legacy.events, encode(requested))
    client.xgroup_create(legacy.events, "workers", "0")
    client.xreadgroup("workers", "old-consumer", {legacy.events: ">"})  # held, not acked
    client.xadd(legacy.dead_letters, {"type": "JobRequested", "job_id": OLD_JOB})
    client.set(f"{prefix}:job:{OLD_JOB}", entry_id, ex=3600)
    client.hset(f"{prefix}:idempotency:key-1", mapping={"job_id": OLD_JOB, "fingerprint": "fp"})
    client.expire(f"{prefix}:idempotency:key-1", 600)
    done = succeeded(OLD_JOB, model_version=MODEL_VERSION)
    client.xadd(legacy.events, encode(done))


def test_every_key_moves_to_partition_0_with_its_entries_group_and_ttl(redis_client, names):
    write_legacy_log(redis_client, names.prefix)
    done = upgrade(redis_client, names)
    assert (done.streams, done.job_keys, done.idempotency_keys) == (2, 1, 1)
    assert [type(e).__name__ for _, e in log_events(redis_client, names)] == [
        "JobRequested",
        "JobSucceeded",
    ]
    (group,) = redis_client.xinfo_groups(names.events(0))
    assert group["name"] == "workers" and group["pending"] == 1
    assert redis_client.xlen(names.dead_letters(0)) == 1
    assert 0 < redis_client.ttl(names.job(OLD_JOB)) <= 3600
    assert redis_client.hgetall(names.idempotency("key-1")) == {
        "job_id": OLD_JOB,
        "fingerprint": "fp",
    }
    assert 0 < redis_client.ttl(names.idempotency("key-1")) <= 600
    legacy_keys = [k for k in redis_client.scan_iter(match=f"{names.prefix}:*") if "{" not in k]
    assert legacy_keys == []


def test_a_second_run_changes_nothing(redis_client, names):
    write_legacy_log(redis_client, names.prefix)
    upgrade(redis_client, names)
    before = sorted(redis_client.scan_iter(match="*" + names.prefix + "*"))
    assert upgrade(redis_client, names) == Upgraded(0, 0, 0)
    assert sorted(redis_client.scan_iter(match="*" + names.prefix + "*")) == before


def test_it_refuses_when_the_new_release_ran_beside_the_old(redis_client, names):
    write_legacy_log(redis_client, names.prefix)
    redis_client.xadd(names.events(0), {"type": "x"})
    with pytest.raises(UpgradeRefusedError):
        upgrade(redis_client, names)
    assert redis_client.exists(LegacyNames(names.prefix).events)


def test_the_command_upgrades_and_the_projector_then_folds_the_old_job(
    redis_url, database_url, redis_client, names, make_projector, engine
):
    write_legacy_log(redis_client, names.prefix)
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    env["STREAM_PREFIX"] = names.prefix
    out = subprocess.run(
        [sys.executable, "-m", "projector", "upgrade-log"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "renamed 2 streams, 1 job keys and 1 Idempotency-Key records" in out
    make_projector().catch_up()
    with engine.connect() as conn:
        status = conn.exec_driver_sql("SELECT status FROM jobs WHERE job_id = %s", (OLD_JOB,))
        assert status.scalar_one() == "succeeded"
