"""The fault tests' audit, from the log and the database, not from what the API says."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import create_engine, select

from domain.events import JobRequested, decode, is_terminal
from domain.ids import partition_of
from domain.job import fold
from eventlog.lanes import Lane, known_lanes
from readmodel.rows import to_state
from readmodel.tables import jobs
from tests.e2e.harness import Service


def audit(service: Service, accepted: set[str], partitions: int) -> Counter[int]:
    """Every accepted job has exactly one request and one outcome, in the partition its id
    names and the lane its request names, the request first, and the rows equal the fold of
    the log. Returns the jobs per partition."""
    client = service.redis()
    try:
        by_lane = {
            (p, lane): [decode(f) for _, f in client.xrange(service.names.lane(p, lane))]
            for p in range(partitions)
            for lane in known_lanes(client, service.names, p)
        }
    finally:
        client.close()
    requested: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for (p, lane), events in by_lane.items():
        for event in events:
            assert partition_of(event.job_id) == p, event
            if isinstance(event, JobRequested):
                assert Lane.of(event) == lane, event
                requested[event.job_id] += 1
            else:
                assert event.job_id in requested, f"{event} before its request in {lane}"
                if is_terminal(event):
                    outcomes[event.job_id] += 1
    assert accepted <= set(requested), "a 202 job is missing from the log"
    assert max(requested.values()) == 1, "a job was requested twice"
    assert set(outcomes) == set(requested) and max(outcomes.values()) == 1
    engine = create_engine(service.env["DATABASE_URL"])
    everything = [e for events in by_lane.values() for e in events]
    expected = fold(everything)
    deadline = time.monotonic() + 30
    while True:
        with engine.connect() as conn:
            rows = {str(r["job_id"]): to_state(r) for r in conn.execute(select(jobs)).mappings()}
        if rows == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()
    assert rows == expected
    return Counter(partition_of(job_id) for job_id in requested)


def wait_all_terminal(service: Service, job_ids: set[str]) -> None:
    for job_id in job_ids:
        assert service.wait_terminal(job_id, timeout_s=60)["status"] == "succeeded"
