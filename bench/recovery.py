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
import uuid
from contextlib import ExitStack
from pathlib import Path

import redis

from classifier.train import DEFAULT_DATA, DEFAULT_VERSION, train
from domain.events import JobStarted, decode
from infra.eventlog import range_entries
from infra.migrations import upgrade
from infra.names import Names
from tests.conftest import fresh_database
from tests.e2e.harness import Service
from tests.servers import postgres_server, redis_server


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
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        postgres_url = stack.enter_context(postgres_server())
        database = stack.enter_context(fresh_database(postgres_url, "template1"))
        upgrade(database)
        train(DEFAULT_DATA, DEFAULT_VERSION, work / "models")
        names = Names(f"bench-{uuid.uuid4().hex[:8]}")
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database,
            "STREAM_PREFIX": names.prefix,
            "MODELS_DIR": str(work / "models"),
            "FAULT_INJECTION": "true",
            "INFERENCE_TIMEOUT_MS": "10000",
        }
        service = Service(env, work, names)
        stack.callback(service.close)
        service.start_all(consumers=2)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        stack.callback(client.close)
        stack.callback(lambda: client.delete(*client.keys(f"{names.prefix}:*")))
        return [trial(service, client, i) for i in range(trials)]


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
