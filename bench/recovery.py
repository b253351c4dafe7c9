"""How long after a consumer dies its job starts again elsewhere (default claim settings).

`python -m bench.recovery [--trials 5]`: starts servers (REDIS_URL / DATABASE_URL, else
embedded), the projector, two consumers and the API; for each trial submits a slow job, SIGKILLs
the consumer working on it and times until another consumer appends JobStarted for it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.stack import running_stack
from domain.events import JobStarted, decode
from infra.eventlog import range_entries
from infra.names import Names
from tests.e2e.harness import Service


def starts(client: redis.Redis, names: Names, job_id: str) -> list[JobStarted]:
    events = (decode(fields) for _, fields in range_entries(client.xrange(names.events)))
    return [e for e in events if isinstance(e, JobStarted) and e.job_id == job_id]


def trial(service: Service, client: redis.Redis, replacement: int) -> float:
    job_id = service.submit("[[sleep_ms:4000]] the weekly report").json()["job_id"]
    while not (first := starts(client, service.names, job_id)):
        time.sleep(0.005)
    victim = first[0].consumer
    service.kill(victim)
    died = time.monotonic()
    while len(starts(client, service.names, job_id)) < 2:
        time.sleep(0.005)
    recovered = time.monotonic() - died
    service.start("consumer", f"consumer-r{replacement}")
    return recovered


def measure(trials: int, work: Path) -> list[float]:
    env = {"INFERENCE_TIMEOUT_MS": "10000", "FAULT_INJECTION": "true"}
    with running_stack(work, consumers=2, env=env) as service:
        client = redis.Redis.from_url(service.env["REDIS_URL"], decode_responses=True)
        try:
            return [trial(service, client, i) for i in range(trials)]
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        times = measure(args.trials, Path(work))
    print("recovery after SIGKILL (s):", " ".join(f"{t:.2f}" for t in times))
    print(f"min {min(times):.2f}  median {statistics.median(times):.2f}  max {max(times):.2f}")


if __name__ == "__main__":
    main()
