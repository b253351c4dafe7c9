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

import httpx
import redis

from bench.outcomes import lane_streams, read_lane
from bench.stack import Stack, running_stack
from domain.events import JobStarted, decode
from eventlog.names import Names


def starts(client: redis.Redis, names: Names, job_id: str, partitions: int = 1) -> list[JobStarted]:
    """The job's JobStarted events, from whichever lane of whichever partition holds it."""
    found = []
    for stream in lane_streams(client, names, partitions).values():
        for chunk in read_lane(client, stream):
            events = (decode(fields) for _, fields in chunk if fields.get("job_id") == job_id)
            found += [e for e in events if isinstance(e, JobStarted)]
    return found


def submit(service: Stack, text: str) -> str:
    """The new job's id."""
    url = f"{service.url}/v1/inference"
    reply = httpx.post(url, json={"text": text}, headers=service.headers, timeout=10)
    reply.raise_for_status()
    return str(reply.json()["job_id"])


def trial(service: Stack, client: redis.Redis, replacement: int) -> float:
    partitions = int(service.env.get("PARTITIONS", "1"))
    job_id = submit(service, "[[sleep_ms:4000]] the weekly report")
    while not (first := starts(client, service.names, job_id, partitions)):
        time.sleep(0.005)
    victim = first[0].consumer
    service.kill(victim)
    died = time.monotonic()
    while len(starts(client, service.names, job_id, partitions)) < 2:
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
