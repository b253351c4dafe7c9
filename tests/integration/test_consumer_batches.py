"""The consumer works the requests of one read as a batch, against a real Redis."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import redis

from classifier.registry import Classifier, ModelManifest, ModelRegistry, Prediction
from consumer.inference import InferenceRunner, Timed
from consumer.worker import Worker
from domain.events import JobFailed, JobSucceeded, decode, is_terminal
from eventlog import group as group_module
from eventlog import scripts
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from tests.support import event_types, job_events, log_events, submit

TEXTS = [f"message {i}: limited offer, call now" for i in range(10)]


class CountingRunner(InferenceRunner):
    """Records every prediction call; `during_batch` runs as each batched one starts."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[tuple[str, list[str]]] = []
        self.singles: list[str] = []
        self.during_batch: Callable[[], None] = lambda: None

    def submit_batch(self, texts: Sequence[str], model_version: str) -> Callable[[], Timed]:
        self.batches.append((model_version, list(texts)))
        self.during_batch()
        return super().submit_batch(texts, model_version)

    def predict(self, text: str, model_version: str, attempt: int) -> Prediction:
        self.singles.append(text)
        return super().predict(text, model_version, attempt)


class PoisonedClassifier:
    """A model that breaks on any call that includes the text POISON."""

    def __init__(self, inner: Classifier) -> None:
        self._inner = inner

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("POISON" in text for text in texts):
            raise ValueError("poison")
        return self._inner.predict(texts)


class SlowClassifier:
    def __init__(self, inner: Classifier, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        time.sleep(self._seconds)
        return self._inner.predict(texts)


class OtherIsSlowRegistry(ModelRegistry):
    """Version "other" takes 0.3 s a prediction."""

    def load(self, version: str) -> Classifier:
        classifier = super().load(version)
        return SlowClassifier(classifier, 0.3) if version == "other" else classifier  # type: ignore[return-value]


class PoisonedRegistry(ModelRegistry):
    def load(self, version: str) -> Classifier:
        return PoisonedClassifier(super().load(version))  # type: ignore[return-value]


@pytest.fixture
def make_worker(make_worker_and_runner):
    return lambda *args, **overrides: make_worker_and_runner(
        *args, runner_class=CountingRunner, **overrides
    )


def drain(worker: Worker) -> None:
    while worker.poll_once():
        pass


def pending(client: redis.Redis, names: Names) -> int:
    return client.xpending(names.events(0), names.workers_group)["pending"]


def test_a_batch_is_one_prediction_with_one_start_and_one_outcome_per_job(
    make_worker, redis_client, names
):
    worker, runner = make_worker()
    jobs = [submit(redis_client, names, text) for text in TEXTS]
    assert worker.poll_once() == len(jobs)
    assert runner.batches == [("spam-tfidf-lr-v1", TEXTS)]
    assert runner.singles == []
    for job_id in jobs:
        events = job_events(redis_client, names, job_id)
        assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
        assert events[-1].attempt == 1 and events[-1].consumer == "c1"
    # Every JobStarted went out (one round trip) before the first outcome (the next one).
    types = [type(event).__name__ for _, event in log_events(redis_client, names)]
    assert types == ["JobRequested"] * 10 + ["JobStarted"] * 10 + ["JobSucceeded"] * 10


def spy_on_start(worker: Worker) -> list[tuple[int, int]]:
    """(JobStarted events, acknowledgements) of every start round trip from now on."""
    calls: list[tuple[int, int]] = []
    lane = worker.group.lane(DEFAULT_LANE)
    start = lane.start

    def spy(requests, at, ack_ids=()):
        calls.append((len(requests), len(ack_ids)))
        return start(requests, at, ack_ids)

    lane.start = spy
    return calls


def test_outcome_events_the_group_reads_are_acknowledged_with_the_next_read(
    make_worker, redis_client, names
):
    worker, _ = make_worker()
    for text in TEXTS[:3]:
        submit(redis_client, names, text)
    worker.poll_once()
    calls = spy_on_start(worker)
    assert worker.poll_once() == 6  # three JobStarted, three JobSucceeded
    assert calls == []  # no round trip of their own
    assert pending(redis_client, names) == 6
    assert worker.poll_once() == 0  # the next read
    assert pending(redis_client, names) == 0


def test_outcome_events_ride_with_the_next_jobs_started(make_worker, redis_client, names):
    worker, _ = make_worker()
    submit(redis_client, names, TEXTS[0])
    worker.poll_once()
    submit(redis_client, names, TEXTS[1])
    calls = spy_on_start(worker)
    assert worker.poll_once() == 3  # JobStarted, JobSucceeded, and the new request
    assert calls == [(1, 2)]
    assert pending(redis_client, names) == 0


def test_a_stopping_consumer_acknowledges_what_it_deferred(make_worker, redis_client, names):
    worker, _ = make_worker()
    submit(redis_client, names, TEXTS[0])
    worker.poll_once()
    worker.poll_once()  # its own two outcome events
    assert pending(redis_client, names) == 2
    stop = threading.Event()
    stop.set()
    worker.run(stop)
    assert pending(redis_client, names) == 0


def test_a_poison_text_fails_alone_and_its_neighbours_succeed(
    make_worker, redis_client, names, models_dir
):
    worker, runner = make_worker(registry=PoisonedRegistry(models_dir))
    texts = [*TEXTS[:2], "POISON pill", *TEXTS[2:4]]
    jobs = [submit(redis_client, names, text) for text in texts]
    drain(worker)
    assert [batch for _, batch in runner.batches] == [texts]  # tried together first ...
    assert runner.singles == texts  # ... then each alone
    outcomes = [job_events(redis_client, names, job)[-1] for job in jobs]
    poisoned = outcomes.pop(2)
    assert isinstance(poisoned, JobFailed)
    assert poisoned.error_type == "InferenceError"
    assert poisoned.error == "ValueError: poison"
    assert all(isinstance(outcome, JobSucceeded) for outcome in outcomes)
    for job_id in jobs:  # started once, by the batch, and never retried
        assert event_types(job_events(redis_client, names, job_id))[:2] == [
            "JobRequested",
            "JobStarted",
        ]
        assert len(job_events(redis_client, names, job_id)) == 3
    assert pending(redis_client, names) == 0


def test_texts_asking_for_faults_run_alone_and_the_rest_share_one_prediction(
    make_worker, redis_client, names
):
    worker, runner = make_worker(max_attempts=3)
    plain = [submit(redis_client, names, text) for text in TEXTS[:3]]
    flaky = submit(redis_client, names, "[[transient:1]] see you soon")
    broken = submit(redis_client, names, "[[permanent]] see you soon")
    drain(worker)
    assert [batch for _, batch in runner.batches] == [TEXTS[:3]]
    assert event_types(job_events(redis_client, names, flaky)) == [
        "JobRequested",
        "JobStarted",
        "JobRetrying",
        "JobSucceeded",
    ]
    assert isinstance(job_events(redis_client, names, broken)[-1], JobFailed)
    assert all(isinstance(job_events(redis_client, names, j)[-1], JobSucceeded) for j in plain)


def with_other_version(models_dir: Path, tmp_path: Path) -> Path:
    """The models plus a second version "other": the same model files under another name."""
    shutil.copytree(models_dir, tmp_path / "models")
    for suffix in (".skops", ".npz"):
        shutil.copy(
            models_dir / f"spam-tfidf-lr-v1{suffix}", tmp_path / "models" / f"other{suffix}"
        )
    manifest = ModelManifest.from_json((models_dir / "spam-tfidf-lr-v1.json").read_text())
    copy = ModelManifest(**{**manifest.__dict__, "version": "other"})
    (tmp_path / "models" / "other.json").write_text(copy.to_json())
    return tmp_path / "models"


def test_each_model_version_is_one_prediction(
    make_worker, redis_client, names, models_dir, tmp_path
):
    worker, runner = make_worker(models_dir=with_other_version(models_dir, tmp_path))
    versions = ["spam-tfidf-lr-v1", "other", "spam-tfidf-lr-v1", "other", "no-such-model"]
    jobs = [submit(redis_client, names, f"hello {i}", v) for i, v in enumerate(versions)]
    drain(worker)
    assert sorted(runner.batches) == [
        ("no-such-model", ["hello 4"]),
        ("other", ["hello 1", "hello 3"]),
        ("spam-tfidf-lr-v1", ["hello 0", "hello 2"]),
    ]
    outcomes = [job_events(redis_client, names, job)[-1] for job in jobs]
    assert [o.model_version for o in outcomes[:4]] == versions[:4]
    assert isinstance(outcomes[4], JobFailed)
    assert outcomes[4].error_type == "UnknownModelVersionError"


def spy_on_reads(monkeypatch: pytest.MonkeyPatch, seen: Callable[[int], None]) -> None:
    """Call `seen` with the number of entries of every XREADGROUP of the consumer group."""
    read = group_module.read_streams

    def reading(*args, **kwargs):
        entries, replies = read(*args, **kwargs)
        seen(sum(len(got) for got in entries.values()))
        return entries, replies

    monkeypatch.setattr(group_module, "read_streams", reading)


def test_a_wait_gathers_entries_that_arrive_within_it(
    make_worker, redis_client, names, monkeypatch
):
    # The batch is full at three entries, so the read stops there instead of at the deadline.
    worker, runner = make_worker(batch_max_size=3, batch_max_wait_ms=5000)
    submit(redis_client, names, TEXTS[0])
    first_read = threading.Event()
    spy_on_reads(monkeypatch, lambda _: first_read.set())
    poll = threading.Thread(target=worker.poll_once)
    poll.start()
    assert first_read.wait(10)
    submit(redis_client, names, TEXTS[1])
    submit(redis_client, names, TEXTS[2])
    poll.join(10)
    assert not poll.is_alive()
    assert [batch for _, batch in runner.batches] == [TEXTS[:3]]


def test_without_a_wait_a_read_is_worked_at_once(make_worker, redis_client, names, monkeypatch):
    worker, runner = make_worker(batch_max_wait_ms=0)
    reads: list[int] = []
    spy_on_reads(monkeypatch, reads.append)
    submit(redis_client, names, TEXTS[0])
    assert worker.poll_once() == 1
    assert reads == [1]
    assert [batch for _, batch in runner.batches] == [TEXTS[:1]]


def test_an_entry_claimed_away_mid_batch_gets_exactly_one_outcome(make_worker, redis_client, names):
    worker, runner = make_worker("slow", claim_idle_ms=100, claim_interval_ms=10)
    thief, _ = make_worker("thief", claim_idle_ms=100, claim_interval_ms=10)
    jobs = [submit(redis_client, names, text) for text in TEXTS[:4]]
    stolen_entry = redis_client.get(names.job(jobs[1]))

    def steal() -> None:  # while "slow" predicts, "thief" takes one entry over
        redis_client.xclaim(names.events(0), names.workers_group, "thief", 0, [stolen_entry])

    runner.during_batch = steal
    worker.group._next_claim_at = float("inf")  # slow only reads new entries
    worker.poll_once()
    stolen = job_events(redis_client, names, jobs[1])
    assert event_types(stolen) == ["JobRequested", "JobStarted"]  # slow's outcome was dropped
    assert pending(redis_client, names) == 1
    threading.Event().wait(0.15)  # the stolen entry turns idle; thief claims and finishes it
    drain(thief)
    drain(worker)
    terminal = [e for _, e in log_events(redis_client, names) if is_terminal(e)]
    assert sorted(e.job_id for e in terminal) == sorted(jobs)
    assert {e.consumer for e in terminal if e.job_id == jobs[1]} == {"thief"}
    assert pending(redis_client, names) == 0


def test_finishing_survives_a_lost_script_cache(make_worker, redis_client, names):
    worker, _ = make_worker()
    jobs = [submit(redis_client, names, text) for text in TEXTS[:3]]
    # As after a Redis restart: the server does not know the script by this hash.
    lane = worker.group.lane(DEFAULT_LANE)
    lane._writes.shas[scripts.FINISH] = lane._writes.shas[scripts.START] = "0" * 40
    drain(worker)
    assert all(isinstance(job_events(redis_client, names, j)[-1], JobSucceeded) for j in jobs)
    assert lane._writes.shas[scripts.FINISH] != "0" * 40


def test_the_batch_outcomes_decode_like_any_other(make_worker, redis_client, names):
    worker, _ = make_worker()
    job_id = submit(redis_client, names, "limited time offer, click now")
    drain(worker)
    (entry_id,) = [i for i, e in log_events(redis_client, names) if isinstance(e, JobSucceeded)]
    outcome = decode(redis_client.xrange(names.events(0), entry_id, entry_id)[0][1])
    assert isinstance(outcome, JobSucceeded) and outcome.job_id == job_id
    assert outcome.label == "spam" and outcome.inference_ms > 0


def test_predictions_start_before_the_started_round_trip(make_worker, redis_client, names):
    """The model works while JobStarted is on the wire; the outcome still comes after it."""
    worker, runner = make_worker()
    jobs = [submit(redis_client, names, text) for text in TEXTS[:3]]
    seen: list[list[str]] = []
    runner.during_batch = lambda: seen.extend(
        event_types(job_events(redis_client, names, j)) for j in jobs
    )
    drain(worker)
    assert seen == [["JobRequested"]] * 3
    for job_id in jobs:
        assert event_types(job_events(redis_client, names, job_id)) == [
            "JobRequested",
            "JobStarted",
            "JobSucceeded",
        ]


def test_a_version_queued_behind_a_timeout_runs_alone(
    make_worker, redis_client, names, models_dir, tmp_path
):
    """Both versions' predictions are queued at once; the first one's timeout takes the
    inference thread's queue with it, and the second version's jobs still succeed, alone."""
    models = with_other_version(models_dir, tmp_path)
    worker, runner = make_worker(
        registry=OtherIsSlowRegistry(models), models_dir=models, inference_timeout_ms=100
    )
    slow = submit(redis_client, names, "hello", "other")
    fast = submit(redis_client, names, "hello", "spam-tfidf-lr-v1")
    drain(worker)
    assert [version for version, _ in runner.batches] == ["other", "spam-tfidf-lr-v1"]
    assert runner.singles == ["hello", "hello"]  # each ran alone after the batch
    timed_out = job_events(redis_client, names, slow)[-1]
    assert isinstance(timed_out, JobFailed)
    assert timed_out.error_type == "InferenceTimeoutError"
    assert isinstance(job_events(redis_client, names, fast)[-1], JobSucceeded)
    assert pending(redis_client, names) == 0
