"""Running predictions with a time limit, turning every failure into a typed error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import TypeVar

from classifier.registry import Classifier, ModelRegistry, Prediction
from consumer import faults, metrics
from consumer.errors import InferenceError, InferenceTimeoutError, TransientInferenceError
from domain.errors import InferFlowError

log = logging.getLogger(__name__)

T = TypeVar("T")
Timed = tuple[list[Prediction], float]  # predictions, seconds the model took


class InferenceRunner:
    """Predicts in a worker thread so that a stuck prediction cannot stall the consumer."""

    def __init__(self, registry: ModelRegistry, timeout_ms: int, fault_injection: bool) -> None:
        self._registry = registry
        self._timeout_ms = timeout_ms
        self._fault_injection = fault_injection
        self._pool = self._new_pool()

    @staticmethod
    def _new_pool() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def predict(self, text: str, model_version: str, attempt: int) -> Prediction:
        """One job's attempt, with fault injection when it is on."""
        classifier = self._registry.load(model_version)
        return self._in_thread(lambda: self._call(classifier, text, attempt))

    def submit_batch(self, texts: Sequence[str], model_version: str) -> Callable[[], Timed]:
        """Start one vectorized prediction for texts of one model version in the inference
        thread; the call returned waits for it, under the time limit counted from then. The
        caller works meanwhile (a round trip to Redis).

        No fault injection: texts that ask for faults run alone, through `predict`.
        """
        try:
            classifier = self._registry.load(model_version)
        except InferFlowError as exc:
            return partial(_reraise, exc)
        future = self._pool.submit(_timed, classifier.predict, texts)
        return partial(self._batch_result, future, len(texts))

    def _batch_result(self, future: Future[Timed], expected: int) -> Timed:
        predictions, seconds = self._wait(future)
        if len(predictions) != expected:
            raise InferenceError(f"{len(predictions)} predictions for {expected} texts")
        return predictions, seconds

    def _in_thread(self, call: Callable[[], T]) -> T:
        return self._wait(self._pool.submit(call))

    def _wait(self, future: Future[T]) -> T:
        try:
            return future.result(timeout=self._timeout_ms / 1000)
        except FutureTimeout:
            # A thread cannot be killed; leave it to finish alone and predict on a fresh one.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            metrics.TIMEOUTS.inc()
            raise InferenceTimeoutError(self._timeout_ms) from None
        except CancelledError:  # queued behind one that timed out: its pool went with it
            raise TransientInferenceError("prediction cancelled after an earlier timeout") from None

    def _call(self, classifier: Classifier, text: str, attempt: int) -> Prediction:
        if self._fault_injection:
            faults.inject(text, attempt)
        return _guarded(classifier.predict, [text])[0]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reraise(exc: InferFlowError) -> Timed:
    raise exc


def _timed(predict: Callable[[Sequence[str]], list[Prediction]], texts: Sequence[str]) -> Timed:
    """The predictions and the seconds they took, measured in the thread that made them."""
    began = time.perf_counter()
    predictions = _guarded(predict, texts)
    return predictions, time.perf_counter() - began


def _guarded(
    predict: Callable[[Sequence[str]], list[Prediction]], texts: Sequence[str]
) -> list[Prediction]:
    try:
        return predict(texts)
    except InferFlowError:
        raise
    except Exception as exc:  # the model's own failure: permanent, with its message
        raise InferenceError(f"{type(exc).__name__}: {exc}") from exc
