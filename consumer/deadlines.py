"""Cancelling the jobs whose deadline (Cancel-After) has passed, in the partitions served.

A job with a deadline is in its partition's deadlines from its request on (eventlog.runs). Every
`DEADLINE_SWEEP_MS`, each consumer process takes the due ones of every partition it serves and
cancels each with the CANCEL script, which checks again, on the server's clock, that the job's
deadline has passed and its run has not ended: `expired` when it never started (it then never
will), `timed_out` when it is running (its consumer's outcome is then dropped). A job its
consumer reaches or finishes after the deadline is cancelled there already (START, FINISH), so
the sweep only bounds how long a job waits in a queue or runs past its deadline.

Every consumer sweeps: cancelling is atomic, so two sweeps of one job write one JobCancelled
(the second finds the run ended), and jobs are cancelled as long as any consumer runs.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from consumer import reporting
from consumer.settings import ConsumerSettings
from eventlog import runs, scripts
from eventlog.connection import Client
from eventlog.errors import NotReplicatedError
from eventlog.runs import DEADLINE, Cancel, Verdict
from eventlog.writes import ScriptCall, SlotWriter

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class DeadlineSweeper:
    def __init__(
        self,
        settings: ConsumerSettings,
        client: Client,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._clock = clock
        names = settings.names
        self._names = names
        self._writers = {
            p: SlotWriter(
                client,
                names.deadlines(p),
                settings.outcome_replicas,
                settings.outcome_replicas_timeout_ms,
            )
            for p in settings.served
        }

    def sweep(self) -> int:
        """Cancel the jobs now due in every partition served, up to DEADLINE_SWEEP_COUNT each;
        the most settled in one partition (cancelled, or found ended): the caller sweeps again
        at once when that is the whole count."""
        settled_most = 0
        for partition, writer in self._writers.items():
            due = self._redis.zrangebyscore(
                self._names.deadlines(partition),
                "-inf",
                int(self._clock().timestamp() * 1000),
                start=0,
                num=self._settings.deadline_sweep_count,
            )
            if due:
                settled = self._cancel(partition, writer, [str(member) for member in due])
                settled_most = max(settled_most, settled)
        return settled_most

    def _cancel(self, partition: int, writer: SlotWriter, members: list[str]) -> int:
        at, name = self._clock(), self._settings.consumer_name
        calls: list[ScriptCall] = []
        jobs: list[str] = []
        for member in members:
            try:
                job_id, lane = runs.parse_member(member)
            except ValueError:  # written by hand: no job to cancel
                self._redis.zrem(self._names.deadlines(partition), member)
                continue
            cancel = Cancel(job_id, lane, DEADLINE, name, at)
            keys, argv = runs.cancel_call(
                self._names, self._names.workers_group, self._ttl_s, cancel
            )
            calls.append((scripts.CANCEL, keys, argv))
            jobs.append(job_id)
        settled = len(members) - len(jobs)
        for job_id, reply in zip(jobs, writer.scripts(calls), strict=True):
            decision = runs.parse(reply)
            # Not due: the server's clock is behind this one's; the next sweep takes it.
            settled += decision.verdict is not Verdict.NOT_DUE
            if decision.verdict is Verdict.CANCELLED:
                reporting.cancelled(name, job_id, "", decision)
        return settled

    @property
    def _ttl_s(self) -> int:
        return self._settings.job_index_ttl_s

    def run(self, stop: threading.Event) -> None:
        """Sweep every DEADLINE_SWEEP_MS (give or take a tenth, so that the consumers' sweeps
        spread out) until `stop` is set."""
        interval_s = self._settings.deadline_sweep_ms / 1000
        while not stop.wait(interval_s * random.uniform(0.9, 1.1)):
            try:
                while self.sweep() >= self._settings.deadline_sweep_count and not stop.is_set():
                    pass
            except (redis.RedisError, NotReplicatedError) as exc:
                log.warning(
                    "deadline sweep failed; trying again",
                    extra={"consumer": self._settings.consumer_name, "error": str(exc)},
                )
