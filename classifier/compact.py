"""A compact form of the trained pipeline that predicts with numpy alone.

Why: a consumer that loads the scikit-learn pipeline pays about 170 MB resident for importing
scikit-learn (which imports scipy.stats) and skops before it holds any model, and about 1 ms of
call overhead per predict. The pipelines `classifier.train` builds are TF-IDF blocks joined
side by side and a logistic regression, which are plain arithmetic once fitted. The trainer
exports their fitted parameters to an ``.npz`` of plain arrays (read with pickling refused, so
it can hold no code), and this module recomputes exactly what ``Pipeline.predict_proba`` does;
the trainer refuses to publish when the two disagree.

numpy is imported lazily: the API imports the registry, never this module's predictions.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from classifier.grams import CharWbCounter, TermCounter, char_wb_grams, word_grams

FORMAT = "inferflow-tfidf-lr"
FORMAT_VERSION = 1
ANALYZERS = ("word", "char_wb")
# Characters transformed in one go. The intermediate arrays take about 100 bytes a character, so
# a batch of long texts is worked in runs rather than costing hundreds of MB at once.
RUN_CHARS = 1 << 16
NORMS = ("l2", None)


class UnsupportedPipelineError(ValueError):
    """A fitted pipeline whose predictions this module cannot reproduce."""


@dataclass(frozen=True)
class BlockSpec:
    """One TF-IDF vectorizer's settings, as stored in the compact model."""

    analyzer: str
    ngram_range: tuple[int, int]
    lowercase: bool
    token_pattern: str
    sublinear_tf: bool
    norm: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "token_pattern": self.token_pattern,
            "sublinear_tf": self.sublinear_tf,
            "norm": self.norm,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BlockSpec:
        low, high = (int(n) for n in raw["ngram_range"])
        spec = cls(
            analyzer=str(raw["analyzer"]),
            ngram_range=(low, high),
            lowercase=bool(raw["lowercase"]),
            token_pattern=str(raw["token_pattern"]),
            sublinear_tf=bool(raw["sublinear_tf"]),
            norm=None if raw["norm"] is None else str(raw["norm"]),
        )
        spec.check()
        return spec

    def check(self) -> None:
        low, high = self.ngram_range
        if self.analyzer not in ANALYZERS:
            raise UnsupportedPipelineError(f"analyzer {self.analyzer!r} (supported: {ANALYZERS})")
        if self.norm not in NORMS:
            raise UnsupportedPipelineError(f"norm {self.norm!r} (supported: {NORMS})")
        if not 1 <= low <= high:
            raise UnsupportedPipelineError(f"ngram_range {self.ngram_range}")


class Block:
    """A fitted TF-IDF vectorizer: texts to (row, column, value) triples of its feature block."""

    def __init__(self, spec: BlockSpec, terms: Sequence[str], idf: Any, offset: int) -> None:
        self.spec = spec
        self.offset = offset
        self.width = len(terms)
        self._idf = idf
        self._counter = _counter(spec, terms)

    def transform(self, texts: Sequence[str]) -> tuple[Any, Any, Any]:
        import numpy as np

        rows, columns, values = self._counter.count(texts)
        if self.spec.sublinear_tf:
            values = np.log(values) + 1.0
        if self._idf is not None:
            values = values * self._idf[columns]
        if self.spec.norm == "l2":
            # Only rows holding some value are divided, so an empty row's zero norm is never used.
            norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(texts)))
            values = values / norms[rows]
        return rows, columns, values


def _counter(spec: BlockSpec, terms: Sequence[str]) -> TermCounter | CharWbCounter:
    low, high = spec.ngram_range
    lower = spec.lowercase
    if spec.analyzer == "char_wb":
        fast = CharWbCounter.build(terms, low, high, lower)
        if fast is not None:
            return fast
        return TermCounter(
            lambda text: char_wb_grams(text.lower() if lower else text, low, high), terms
        )
    findall = re.compile(spec.token_pattern).findall
    return TermCounter(
        lambda text: word_grams(text.lower() if lower else text, findall, low, high), terms
    )


class CompactModel:
    """TF-IDF blocks side by side, then logistic regression; quacks like the sklearn pipeline
    as far as `classifier.registry.Classifier` uses it (`classes_`, `predict_proba`)."""

    def __init__(self, blocks: list[Block], coef: Any, intercept: Any, classes: list[str]) -> None:
        width = sum(block.width for block in blocks)
        if coef.shape[1] != width or coef.shape[0] != intercept.shape[0]:
            raise ValueError(f"coefficients {coef.shape} do not fit {width} features")
        expected = 1 if len(classes) == 2 else len(classes)
        if coef.shape[0] != expected:
            raise ValueError(f"{coef.shape[0]} coefficient rows for {len(classes)} classes")
        self.blocks = blocks
        self.classes_ = classes
        self._coef = coef
        self._intercept = intercept

    def decision_function(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if len(texts) < 2:
            return self._scores(texts)
        return np.concatenate([self._scores(texts[a:b]) for a, b in _runs(texts)])

    def _scores(self, texts: Sequence[str]) -> Any:
        import numpy as np

        scores = np.tile(self._intercept, (len(texts), 1))
        for block in self.blocks:
            rows, columns, values = block.transform(texts)
            weights = self._coef[:, block.offset + columns]
            for k in range(scores.shape[1]):
                scores[:, k] += np.bincount(rows, weights=values * weights[k], minlength=len(texts))
        return scores

    def predict_proba(self, texts: Sequence[str]) -> Any:
        import numpy as np

        scores = self.decision_function(texts)
        if len(self.classes_) == 2:
            positive = _expit(scores[:, 0])
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores


def _runs(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """Runs of texts of at most RUN_CHARS characters (a longer text makes a run alone)."""
    first, chars = 0, 0
    for i, text in enumerate(texts):
        if i > first and chars + len(text) > RUN_CHARS:
            yield first, i
            first, chars = i, 0
        chars += len(text)
    yield first, len(texts)


def _expit(x: Any) -> Any:
    """1 / (1 + e^-x) without overflow for large |x|."""
    import numpy as np

    small = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def load(data: bytes) -> CompactModel:
    """The model `export` wrote; ValueError (or KeyError) for anything else."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} model")
        blocks = list(_blocks(meta["blocks"], arrays))
        coef = np.ascontiguousarray(arrays["coef"], dtype=np.float64)
        intercept = np.asarray(arrays["intercept"], dtype=np.float64)
    return CompactModel(blocks, coef, intercept, [str(c) for c in meta["classes"]])


def _blocks(raw_blocks: Iterable[dict[str, Any]], arrays: Any) -> Iterable[Block]:
    offset = 0
    for i, raw in enumerate(raw_blocks):
        terms = [str(term) for term in raw["terms"]]
        idf = arrays[f"idf{i}"] if raw["idf"] else None
        if idf is not None and idf.shape != (len(terms),):
            raise ValueError(f"block {i}: {idf.shape} idf weights for {len(terms)} terms")
        block = Block(BlockSpec.from_json(raw["spec"]), terms, idf, offset)
        offset += block.width
        yield block
