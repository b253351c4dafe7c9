"""Chaos under load: SIGKILL every role and restart both servers, then audit log and database.

Invariants checked from the event log and the jobs table, not from what the API says:
every 202 ends in exactly one terminal event, no job is doubled, and the projection equals a
fresh fold of the log. The order and timing of faults come from a seed printed on failure
(set CHAOS_SEED to replay one).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, select

from devstack.servers import embedded_postgres, embedded_redis
from domain.events import JobRequested, decode, is_terminal
from domain.job import fold
from readmodel.migrations import upgrade
from readmodel.rows import to_state
from readmodel.tables import jobs
from tests.e2e.harness import Service
from tests.e2e.load import PlainLoad

pytestmark = pytest.mark.e2e

TEXTS = (
    "limited time offer, click now",
    "[[transient:1]] can you send me the slides from today?",
    "[[sleep_ms:30]] the parcel will arrive on monday",
    "[[permanent]] this one always fails",
)


def faults(service: Service, redis_server, postgres_server) -> dict:
    def restart(name: str, role: str) -> None:
        service.kill(name)
        service.start(role, name)

    def bounce(server) -> None:
        server.kill()
        time.sleep(0.5)
        server.start()

    return {
        "kill consumer": lambda: restart("consumer-0", "consumer"),
        "kill projector": lambda: restart("projector", "projector"),
        "kill api": lambda: restart("api", "api"),
        "restart redis": lambda: bounce(redis_server),
        "restart postgres": lambda: bounce(postgres_server),
    }


def read_log(service: Service) -> list:
    """Every partition's events (the suite runs on one partition and on several)."""
    return [(entry_id, decode(fields)) for entry_id, fields in service.log()]


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_nothing_is_lost_or_doubled_whatever_dies(make_service, tmp_path):
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"CHAOS_SEED={seed}")
    with embedded_redis(tmp_path) as redis_server, embedded_postgres(tmp_path) as pg_server:
        upgrade(pg_server.url)
        service: Service = make_service(
            redis_url=redis_server.url,
            DATABASE_URL=pg_server.url,
            CLAIM_IDLE_MS="1000",
            CLAIM_INTERVAL_MS="200",
            DEPENDENCY_TIMEOUT_MS="1000",
        )
        service.start_all(consumers=2)
        plan = list(faults(service, redis_server, pg_server).items())
        rng.shuffle(plan)
        with PlainLoad(service.url, service.admin_key, TEXTS) as load:
            for name, fault in plan:
                time.sleep(rng.uniform(0.3, 1.5))
                print(f"fault: {name}")
                fault()
            time.sleep(1)
        assert load.unexpected == [], "only 202 or 503 may answer a valid submission"
        assert len(load.accepted) > 50, f"too little load got through (seed {seed})"

        def outcomes() -> Counter:
            return Counter(e.job_id for _, e in read_log(service) if is_terminal(e))

        try:
            wait_for(lambda: set(load.accepted) <= set(outcomes()), 60, f"outcomes (seed {seed})")
        except AssertionError:
            missing = set(load.accepted) - set(outcomes())
            log = read_log(service)
            for job in sorted(missing)[:3]:
                print(job, [(i, type(e).__name__) for i, e in log if e.job_id == job])
            for name in service.procs:
                print(f"--- {name}\n{service.logs(name)[-1500:]}")
            raise
        log = read_log(service)
        requested = [e.job_id for _, e in log if isinstance(e, JobRequested)]
        terminal = outcomes()
        assert len(requested) == len(set(requested)), "a job was requested twice"
        assert set(load.accepted) <= set(requested), "a 202 job is missing from the log"
        wait_for(lambda: set(requested) <= set(outcomes()), 30, "every logged job to finish")
        terminal = outcomes()
        assert max(terminal.values()) == 1, f"a job has two outcomes (seed {seed})"

        engine = create_engine(pg_server.url)
        expected = fold(event for _, event in read_log(service))

        def rows() -> dict:
            with engine.connect() as conn:
                found = conn.execute(select(jobs)).mappings()
                return {str(r["job_id"]): to_state(r) for r in found}

        # Every job is terminal now, so the log is done changing: the projector must reach it.
        try:
            wait_for(lambda: rows() == expected, 30, "the projection to equal the fold of the log")
        finally:
            engine.dispose()
