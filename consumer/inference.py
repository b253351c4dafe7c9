"""Running predictions with a time limit, turning every failure into a typed error."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from classifier.registry import Classifier, ModelRegistry, Prediction
from consumer import faults, metrics
from domain.errors import InferenceError, InferenceTimeoutError, InferFlowError

log = logging.getLogger(__name__)

T = TypeVar("T")


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

    def predict_batch(self, texts: Sequence[str], model_version: str) -> list[Prediction]:
        """One vectorized prediction for texts of one model version, under one time limit.

        No fault injection: texts that ask for faults run alone, through `predict`.
        """
        classifier = self._registry.load(model_version)
        predictions = self._in_thread(lambda: _guarded(classifier.predict, texts))
        if len(predictions) != len(texts):
            raise InferenceError(f"{len(predictions)} predictions for {len(texts)} texts")
        return predictions

    def _in_thread(self, call: Callable[[], T]) -> T:
        future = self._pool.submit(call)
        try:
            return future.result(timeout=self._timeout_ms / 1000)
        except FutureTimeout:
            # A thread cannot be killed; leave it to finish alone and predict on a fresh one.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            metrics.TIMEOUTS.inc()
            raise InferenceTimeoutError(self._timeout_ms) from None

    def _call(self, classifier: Classifier, text: str, attempt: int) -> Prediction:
        if self._fault_injection:
            faults.inject(text, attempt)
        return _guarded(classifier.predict, [text])[0]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _guarded(
    predict: Callable[[Sequence[str]], list[Prediction]], texts: Sequence[str]
) -> list[Prediction]:
    try:
        return predict(texts)
    except InferFlowError:
        raise
    except Exception as exc:  # the model's own failure: permanent, with its message
        raise InferenceError(f"{type(exc).__name__}: {exc}") from exc
