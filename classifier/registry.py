"""Model registry: versioned scikit-learn pipelines stored as ``.skops`` files plus JSON manifests.

Layout of a models directory::

    <version>.skops   the pipeline, written by ``skops.io.dump`` (never pickle)
    <version>.npz     its compact form (``classifier.compact``): plain arrays, no code
    <version>.png     its held-out confusion matrix as a heat map (``classifier.heatmap``)
    <version>.json    its manifest, written last, so only complete models are listed

``load`` serves the compact form when the manifest names one, so a consumer never imports
scikit-learn or skops; models trained before it existed load from the ``.skops`` file.
Heavy libraries (scikit-learn, skops, numpy) are imported lazily in ``load``: the API imports
this module only to list versions and must stay light.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from classifier.errors import ModelIntegrityError, UnknownModelVersionError
from classifier.serving import ServingStore

MANIFEST_SUFFIX = ".json"
MODEL_SUFFIX = ".skops"
COMPACT_SUFFIX = ".npz"
CONFUSION_SUFFIX = ".png"

# What built a model: the trainer's own pipeline, or a user's, published with classifier.publish.
KIND_TRAINED = "tfidf-lr"
KIND_USER = "user-pipeline"

# Versions become file names; anything outside this pattern could escape the models directory.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Types we let skops instantiate beyond its own defaults. It already trusts these today (so
# get_untrusted_types normally returns nothing), but a future skops may trust less; listing the
# pipeline's own types keeps loading working then, while anything else is still refused.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "numpy.float64",
        "numpy.ndarray",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.pipeline.Pipeline",
    }
)


def is_valid_version(version: str) -> bool:
    return VERSION_PATTERN.fullmatch(version) is not None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelManifest:
    version: str
    sha256: str
    created_at: str
    accuracy: float
    n_train: int
    n_test: int
    labels: tuple[str, ...]
    sklearn_version: str
    skops_version: str
    data_sha256: str
    # SHA-256 of <version>.npz; "" for models trained before the compact form existed.
    compact_sha256: str = ""
    # The fields below came with user models; a manifest without them reads with these defaults.
    kind: str = KIND_TRAINED
    # Rows of the data set, training and held-out together.
    n_rows: int = 0
    # label -> {"precision", "recall", "f1", "support"} on the held-out rows.
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    # Held-out confusion matrix: rows true labels, columns predicted ones, both in `labels` order.
    confusion: tuple[tuple[int, ...], ...] = ()
    # File name of the confusion matrix's picture beside the manifest; "" when there is none.
    confusion_png: str = ""
    # Types the publisher was told to trust beyond TRUSTED_TYPES (classifier.publish --trust).
    trusted_types: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        raw = json.loads(text)
        return cls(
            version=str(raw["version"]),
            sha256=str(raw["sha256"]),
            created_at=str(raw["created_at"]),
            accuracy=float(raw["accuracy"]),
            n_train=int(raw["n_train"]),
            n_test=int(raw["n_test"]),
            labels=tuple(str(label) for label in raw["labels"]),
            sklearn_version=str(raw["sklearn_version"]),
            skops_version=str(raw["skops_version"]),
            data_sha256=str(raw["data_sha256"]),
            compact_sha256=str(raw.get("compact_sha256", "")),
            kind=str(raw.get("kind", KIND_TRAINED)),
            n_rows=int(raw.get("n_rows", int(raw["n_train"]) + int(raw["n_test"]))),
            per_label={
                str(label): {str(k): float(v) for k, v in metrics.items()}
                for label, metrics in raw.get("per_label", {}).items()
            },
            confusion=tuple(tuple(int(v) for v in row) for row in raw.get("confusion", ())),
            confusion_png=str(raw.get("confusion_png", "")),
            trusted_types=tuple(str(t) for t in raw.get("trusted_types", ())),
        )


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]


class Classifier:
    """A loaded pipeline bound to its version; safe to share between threads (read-only)."""

    def __init__(self, version: str, pipeline: Any) -> None:
        self.version = version
        self._pipeline = pipeline
        self.labels: tuple[str, ...] = tuple(str(c) for c in pipeline.classes_)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        # One call for the whole batch: vectorizing and the matrix product amortize well.
        rows = probabilities(self._pipeline, list(texts)).tolist()
        return [self._to_prediction(row) for row in rows]

    def _to_prediction(self, row: list[float]) -> Prediction:
        probabilities = {label: float(p) for label, p in zip(self.labels, row, strict=True)}
        label = max(self.labels, key=probabilities.__getitem__)
        return Prediction(label=label, score=probabilities[label], probabilities=probabilities)


def probabilities(pipeline: Any, texts: list[str]) -> Any:
    """Each text's probability per class: `predict_proba`, else a softmax over the scores of
    `decision_function` (with two classes its one score is for classes_[1], so the softmax of
    (0, score): the logistic sigmoid). Scores are not calibrated probabilities; the softmax
    keeps their order and makes them sum to 1, which is what a prediction's `score` promises."""
    if hasattr(pipeline, "predict_proba"):
        return pipeline.predict_proba(texts)
    import numpy as np

    scores = np.asarray(pipeline.decision_function(texts), dtype=np.float64)
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)


class ModelRegistry:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self._cache: dict[str, Classifier] = {}
        self._lock = threading.Lock()
        self.serving = ServingStore(self.models_dir)

    def versions(self) -> tuple[str, ...]:
        if not self.models_dir.is_dir():
            return ()
        stems = (p.stem for p in self.models_dir.glob(f"*{MANIFEST_SUFFIX}") if p.is_file())
        return tuple(sorted(s for s in stems if is_valid_version(s)))

    def has(self, version: str) -> bool:
        return is_valid_version(version) and self._manifest_path(version).is_file()

    def manifest(self, version: str) -> ModelManifest:
        if not self.has(version):
            raise UnknownModelVersionError(version, self.versions())
        try:
            return ModelManifest.from_json(self._manifest_path(version).read_text("utf-8"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(version, f"unreadable manifest: {exc}") from exc

    def picture(self, version: str) -> bytes | None:
        """The held-out confusion matrix's PNG, None when the model has none."""
        name = self.manifest(version).confusion_png
        if not name:
            return None
        try:
            return (self.models_dir / name).read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(version, f"cannot read {name}: {exc}") from exc

    def load(self, version: str) -> Classifier:
        # Held across the load so concurrent first requests do not each deserialize the model.
        with self._lock:
            cached = self._cache.get(version)
            if cached is None:
                cached = self._load_uncached(version)
                self._cache[version] = cached
            return cached

    def _load_uncached(self, version: str) -> Classifier:
        manifest = self.manifest(version)
        if manifest.version != version:
            raise ModelIntegrityError(version, f"manifest names version {manifest.version!r}")
        pipeline = self._model(version, manifest)
        scorer = hasattr(pipeline, "predict_proba") or hasattr(pipeline, "decision_function")
        if not (scorer and hasattr(pipeline, "classes_")):
            raise ModelIntegrityError(version, f"{type(pipeline).__name__} is not a classifier")
        classifier = Classifier(version, pipeline)
        if classifier.labels != manifest.labels:
            reason = f"labels {classifier.labels} differ from manifest {manifest.labels}"
            raise ModelIntegrityError(version, reason)
        return classifier

    def _model(self, version: str, manifest: ModelManifest) -> Any:
        if not manifest.compact_sha256:
            path = self._model_path(version)
            data = self._read_verified(version, path, manifest.sha256)
            return _deserialize(version, data, manifest.trusted_types)
        path = self.models_dir / f"{version}{COMPACT_SUFFIX}"
        data = self._read_verified(version, path, manifest.compact_sha256)
        from classifier import compact

        try:
            return compact.load(data)
        except Exception as exc:  # numpy and zipfile raise many kinds on a malformed archive
            raise ModelIntegrityError(version, f"cannot read compact model: {exc}") from exc

    def _read_verified(self, version: str, path: Path, expected_sha256: str) -> bytes:
        # Hash and deserialize the same bytes, so the file cannot change between check and use.
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(version, f"cannot read model file: {exc}") from exc
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            reason = f"{path.name}: sha256 {actual} does not match manifest {expected_sha256}"
            raise ModelIntegrityError(version, reason)
        return data

    def _manifest_path(self, version: str) -> Path:
        return self.models_dir / f"{version}{MANIFEST_SUFFIX}"

    def _model_path(self, version: str) -> Path:
        return self.models_dir / f"{version}{MODEL_SUFFIX}"


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops payload that skops would not load by default."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=data))


def refused_types(untrusted: Sequence[str], trusted: Sequence[str] = ()) -> list[str]:
    """The untrusted types that neither our allow-list nor `trusted` (the types a publisher
    trusted, recorded in the manifest) cover."""
    return sorted(set(untrusted) - TRUSTED_TYPES - set(trusted))


def _deserialize(version: str, data: bytes, trusted: Sequence[str]) -> Any:
    import skops.io

    untrusted = untrusted_types(data)
    refused = refused_types(untrusted, trusted)
    if refused:
        raise ModelIntegrityError(version, f"refusing untrusted types: {', '.join(refused)}")
    try:
        return skops.io.load(io.BytesIO(data), trusted=untrusted)
    except Exception as exc:  # skops raises many kinds on a malformed archive
        raise ModelIntegrityError(version, f"cannot deserialize: {exc}") from exc
