"""Working the requests of one read together: one vectorized prediction per model version.

The worker sorts what it read (`partition`): entries that need no work (the group also reads
the outcome events), requests that run alone, and requests that form the batch. For the batch:

1. one prediction per model version starts in the inference thread, under the time limit;
2. meanwhile one pipelined round trip appends every JobStarted, with one XACK of the no-work
   entries;
3. one pipelined round trip of FINISH scripts, one per job, each checking that the entry is
   still this consumer's, so a job has exactly one outcome however it was delivered.

When a version's prediction fails (a text that breaks the model, a timeout, an unknown
version), its jobs run alone afterwards, where retries and failures work job by job: one
poison text fails only its own job.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from classifier.registry import Prediction
from consumer import faults, metrics, outcomes, reporting
from consumer.inference import InferenceRunner, Timed
from domain.errors import InferFlowError
from domain.events import JobRequested, JobSucceeded, decode
from eventlog.entries import Entry
from eventlog.group import ConsumerGroup
from runtime import spans

log = logging.getLogger(__name__)

Request = tuple[str, JobRequested]  # entry id, decoded request


@dataclass
class Partition:
    acks: list[str] = field(default_factory=list)  # outcome events: acknowledged unread
    batch: list[Request] = field(default_factory=list)
    alone: list[Entry] = field(default_factory=list)  # undecodable, or asking for faults


def partition(entries: Sequence[Entry], fault_injection: bool) -> Partition:
    part = Partition()
    for entry_id, fields in entries:
        if fields.get("type") != JobRequested.__name__:
            part.acks.append(entry_id)
            continue
        try:
            request = decode(fields)
        except InferFlowError:
            part.alone.append((entry_id, fields))  # running alone fails its job with the reason
            continue
        assert isinstance(request, JobRequested)
        if fault_injection and faults.has_directives(request.text):
            part.alone.append((entry_id, fields))
        else:
            part.batch.append((entry_id, request))
    return part


@dataclass
class BatchResult:
    tally: Counter[str]  # outcome name -> jobs
    alone: list[Request]  # started, but their prediction failed: run them alone


class BatchJobs:
    def __init__(
        self,
        consumer: str,
        runner: InferenceRunner,
        clock: Callable[[], datetime],
    ) -> None:
        self._name = consumer
        self._runner = runner
        self._clock = clock

    def start(self, lane: ConsumerGroup, part: Partition) -> None:
        """Step 1: JobStarted for the batch and the XACK of the rest, one round trip."""
        at = self._clock()
        started = [outcomes.started(r, self._name, at) for _, r in part.batch]
        lane.append_and_ack(started, part.acks)

    def run(self, lane: ConsumerGroup, part: Partition) -> BatchResult:
        """Steps 1 to 3, for entries of one lane, whose stream gets every event written. The
        predictions start first, so that the model works while the JobStarted round trip is on
        the wire; no outcome is written before that round trip has returned, so a job's
        JobStarted always comes before its outcome in the log."""
        began_ns, began = time.time_ns(), time.perf_counter()
        groups = _by_version(part.batch)
        waits = {v: self._runner.submit_batch(_texts(g), v) for v, g in groups.items()}
        self.start(lane, part)
        done: list[tuple[str, JobRequested, JobSucceeded]] = []
        alone: list[Request] = []
        for version, group in groups.items():
            predictions, inference_ms = self._predictions(version, group, waits[version])
            if predictions is None:
                alone.extend(group)
                continue
            at = self._clock()
            for (entry_id, request), prediction in zip(group, predictions, strict=True):
                outcome = outcomes.succeeded(request, self._name, at, 1, prediction, inference_ms)
                done.append((entry_id, request, outcome))
        finished = lane.finish_all([(e, o) for e, _, o in done]) if done else []
        duration_ms = (time.perf_counter() - began) * 1000
        return BatchResult(self._report(done, finished, began_ns, duration_ms), alone)

    def _predictions(
        self, version: str, group: Sequence[Request], wait: Callable[[], Timed]
    ) -> tuple[list[Prediction] | None, float]:
        try:
            predictions, elapsed_s = wait()
        except InferFlowError as exc:
            log.warning(
                "batch prediction failed; its jobs run alone",
                extra={
                    "consumer": self._name,
                    "model_version": version,
                    "jobs": len(group),
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            return None, 0.0
        metrics.INFERENCE_BATCH_SIZE.observe(len(group))
        for _ in group:  # each job waited the whole batch's time for its prediction
            metrics.INFERENCE_SECONDS.observe(elapsed_s)
        return predictions, elapsed_s * 1000

    def _report(
        self,
        done: Sequence[tuple[str, JobRequested, JobSucceeded]],
        finished: Sequence[bool],
        began_ns: int,
        duration_ms: float,
    ) -> Counter[str]:
        tally: Counter[str] = Counter()
        ended_ns = time.time_ns()
        tracing = spans.enabled()  # off, a span per job would still cost its attributes
        for (_, request, outcome), ours in zip(done, finished, strict=True):
            name = reporting.outcome_name(outcome, ours)
            tally[name] += 1
            reporting.job(self._name, request, outcome, name, duration_ms)
            if tracing:
                attributes: dict[str, spans.AttributeValue] = {
                    "inferflow.job_id": request.job_id,
                    "inferflow.consumer": self._name,
                    "inferflow.attempt": 1,
                    "inferflow.outcome": name,
                }
                spans.record(
                    "inferflow.infer", request.traceparent, began_ns, ended_ns, **attributes
                )
        reporting.count(tally)
        return tally


def _texts(group: Sequence[Request]) -> list[str]:
    return [request.text for _, request in group]


def _by_version(requests: Sequence[Request]) -> dict[str, list[Request]]:
    groups: dict[str, list[Request]] = {}
    for entry_id, request in requests:
        groups.setdefault(request.model_version, []).append((entry_id, request))
    return groups
