"""Working the requests of one read together: one vectorized prediction per model version.

The worker sorts what it read (`partition`): entries that need no work (the group also reads
the outcome events), requests that run alone, and requests that form the batch. For the batch:

1. one prediction per model version starts in the inference thread, under the time limit;
2. meanwhile one round trip: the START script begins every job (its JobStarted), with one XACK
   of the no-work entries; a job cancelled while queued, of a cancelled batch or past its
   deadline is not begun (eventlog.runs), and its prediction is dropped;
3. one pipelined round trip of FINISH scripts, one per job, each checking that the entry is
   still this consumer's and the job's run has not ended (a cancel), so a job has exactly one
   terminal event however it was delivered and whoever cancels it.

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
from eventlog.runs import Decision, Verdict
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

    def start(self, lane: ConsumerGroup, part: Partition) -> tuple[set[str], Counter[str]]:
        """Step 2: begin the batch's jobs and acknowledge the rest, one round trip; the entry
        ids of the jobs begun, and what became of the others."""
        decisions = lane.start(part.batch, self._clock(), part.acks)
        begun: set[str] = set()
        tally: Counter[str] = Counter()
        for (entry_id, request), decision in zip(part.batch, decisions, strict=True):
            if decision.verdict is Verdict.STARTED:
                begun.add(entry_id)
                continue
            tally[reporting.unstarted_name(decision)] += 1
            reporting.cancelled(self._name, request.job_id, request.traceparent, decision)
        return begun, tally

    def run(self, lane: ConsumerGroup, part: Partition) -> BatchResult:
        """Steps 1 to 3, for entries of one lane, whose stream gets every event written. The
        predictions start first, so that the model works while the START round trip is on the
        wire; no outcome is written before that round trip has returned, so a job's JobStarted
        always comes before its outcome in the log."""
        began_ns, began = time.time_ns(), time.perf_counter()
        groups = _by_version(part.batch)
        waits = {v: self._runner.submit_batch(_texts(g), v) for v, g in groups.items()}
        begun, unstarted = self.start(lane, part)
        done: list[tuple[str, JobRequested, JobSucceeded]] = []
        alone: list[Request] = []
        for version, group in groups.items():
            predictions, inference_ms = self._predictions(version, group, waits[version])
            if predictions is None:
                alone.extend(r for r in group if r[0] in begun)
                continue
            at = self._clock()
            for (entry_id, request), prediction in zip(group, predictions, strict=True):
                if entry_id not in begun:
                    continue
                outcome = outcomes.succeeded(request, self._name, at, 1, prediction, inference_ms)
                done.append((entry_id, request, outcome))
        finished: list[Decision] = []
        if done:
            requests = {request.job_id: request for _, request, _ in done}
            finished = lane.finish_all([(e, o) for e, _, o in done], requests)
        duration_ms = (time.perf_counter() - began) * 1000
        tally = self._report(done, finished, began_ns, duration_ms)
        reporting.count(unstarted)
        return BatchResult(tally + unstarted, alone)

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
        finished: Sequence[Decision],
        began_ns: int,
        duration_ms: float,
    ) -> Counter[str]:
        tally: Counter[str] = Counter()
        ended_ns = time.time_ns()
        tracing = spans.enabled()  # off, a span per job would still cost its attributes
        for (_, request, outcome), decision in zip(done, finished, strict=True):
            name = reporting.outcome_name(outcome, decision)
            tally[name] += 1
            reporting.job(self._name, request, outcome, name, duration_ms)
            reporting.cancelled(self._name, request.job_id, request.traceparent, decision)
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
