"""Train a text classifier from a ``label,text`` CSV and publish it to a models directory.

    python -m classifier.train [--data CSV] [--version V] [--models-dir DIR]
                               [--test-size 0.2] [--seed 42] [--force]

Exit code 2 means the input was refused (bad CSV, bad version name, version already exists).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import sklearn
import skops
import skops.io
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from classifier import compact, heatmap
from classifier.cli import TrainingInputError, add_target, run_publishing
from classifier.evaluation import Evaluation, evaluate, report
from classifier.export import export
from classifier.files import atomic_write
from classifier.registry import (
    COMPACT_SUFFIX,
    CONFUSION_SUFFIX,
    MANIFEST_SUFFIX,
    MODEL_SUFFIX,
    ModelManifest,
    is_valid_version,
    refused_types,
    sha256_bytes,
    untrusted_types,
)

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "spam_ham.csv"
DEFAULT_VERSION = "spam-tfidf-lr-v1"
# Below these, a held-out split says nothing and stratification itself can fail.
MIN_ROWS = 20
MIN_PER_CLASS = 5
# From this many training rows on, n-grams found in a single text are left out (build_pipeline).
LARGE_CORPUS_ROWS = 5000
# Largest difference in any probability allowed between the compact form and the pipeline.
COMPACT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]
    sha256: str


def load_dataset(path: Path) -> Dataset:
    try:
        raw = Path(path).read_bytes()
        # utf-8-sig: spreadsheets often prepend a BOM, which would corrupt the first header.
        content = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingInputError(f"cannot read {path}: {exc}") from exc
    texts, labels = _parse_rows(content, path)
    _check_classes(labels, path)
    return Dataset(texts=texts, labels=labels, sha256=sha256_bytes(raw))


def _parse_rows(content: str, path: Path) -> tuple[list[str], list[str]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in ("label", "text") if c not in columns]
    if missing:
        raise TrainingInputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {columns or 'none'}"
        )
    texts: list[str] = []
    labels: list[str] = []
    try:
        for row in reader:
            label, text = (row.get("label") or "").strip(), row.get("text") or ""
            if not label or not text.strip():
                raise TrainingInputError(f"{path}:{reader.line_num}: empty label or text")
            labels.append(label)
            texts.append(text)
    except csv.Error as exc:
        raise TrainingInputError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from exc
    return texts, labels


def _check_classes(labels: list[str], path: Path) -> None:
    if len(labels) < MIN_ROWS:
        raise TrainingInputError(f"{path}: {len(labels)} rows; need at least {MIN_ROWS}")
    counts = Counter(labels)
    if len(counts) < 2:
        raise TrainingInputError(f"{path}: need at least 2 classes, found {sorted(counts)}")
    scarce = sorted(label for label, n in counts.items() if n < MIN_PER_CLASS)
    if scarce:
        raise TrainingInputError(
            f"{path}: classes {scarce} have fewer than {MIN_PER_CLASS} rows each"
        )


def build_pipeline(seed: int, rows: int = 0) -> Pipeline:
    """The pipeline for a training set of `rows` rows."""
    # On a large corpus most n-grams occur in one text only: they teach the model nothing that
    # generalizes, yet made up most of the vocabulary, the memory and the time of a 30,000-row
    # corpus. Small corpora keep them: there, one text may be all a label has of a word.
    min_df = 2 if rows >= LARGE_CORPUS_ROWS else 1
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df)),
            # Character n-grams catch obfuscated spelling, URLs and short codes that word
            # tokens miss; on the shipped corpus they add about 2 points of accuracy.
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=min_df
                ),
            ),
        ]
    )
    # Weak regularization (C=10) suits the many sparse features of a small corpus.
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("clf", model)])


def train(
    data_path: Path,
    version: str,
    models_dir: Path,
    test_size: float = 0.2,
    seed: int = 42,
    *,
    overwrite: bool = False,
    out: TextIO | None = None,
) -> ModelManifest:
    """Fit on a stratified split, evaluate on the rest, and publish model plus manifest.

    The published model is the one evaluated, so the manifest's accuracy describes it exactly.
    """
    models_dir = Path(models_dir)
    check_target(version, models_dir, overwrite)
    data = load_dataset(Path(data_path))
    x_train, x_test, y_train, y_test = _split(data, test_size, seed)
    pipeline = build_pipeline(seed, len(y_train)).fit(x_train, y_train)
    labels = tuple(str(c) for c in pipeline.classes_)
    scores = evaluate(labels, y_test, [str(p) for p in pipeline.predict(x_test)])
    if out is not None:
        out.write(report(scores))
    payload = _serialize(pipeline)
    compact_payload = _compact(pipeline, x_test)
    manifest = ModelManifest(
        version=version,
        sha256=sha256_bytes(payload),
        created_at=now(),
        accuracy=scores.accuracy,
        n_train=len(y_train),
        n_test=len(y_test),
        labels=labels,
        sklearn_version=sklearn.__version__,
        skops_version=skops.__version__,
        data_sha256=data.sha256,
        compact_sha256=sha256_bytes(compact_payload),
        n_rows=len(data.labels),
        **evaluation_fields(version, scores),
    )
    files = {MODEL_SUFFIX: payload, COMPACT_SUFFIX: compact_payload}
    publish(models_dir, manifest, {**files, CONFUSION_SUFFIX: heatmap.render(scores.confusion)})
    if out is not None:
        out.write(f"confusion matrix: {models_dir / manifest.confusion_png}\n")
    return manifest


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluation_fields(version: str, scores: Evaluation) -> dict[str, Any]:
    """The manifest's fields that come from the held-out evaluation."""
    return {
        "per_label": scores.per_label,
        "confusion": scores.confusion,
        "confusion_png": f"{version}{CONFUSION_SUFFIX}",
    }


def check_target(version: str, models_dir: Path, overwrite: bool) -> None:
    if not is_valid_version(version):
        raise TrainingInputError(
            f"invalid version {version!r}: use letters, digits, '.', '_' or '-' (max 128)"
        )
    # A version names one model forever: events record it, and running services cache it.
    if (models_dir / f"{version}{MANIFEST_SUFFIX}").exists() and not overwrite:
        raise TrainingInputError(
            f"version {version!r} already exists in {models_dir}; pick a new one or use --force"
        )


def _split(
    data: Dataset, test_size: float, seed: int
) -> tuple[list[str], list[str], list[str], list[str]]:
    if not 0.0 < test_size < 1.0:
        raise TrainingInputError(f"test size must be between 0 and 1, got {test_size}")
    try:
        parts = train_test_split(
            data.texts, data.labels, test_size=test_size, random_state=seed, stratify=data.labels
        )
    except ValueError as exc:  # e.g. a test set too small to hold every class
        raise TrainingInputError(f"cannot split the data: {exc}") from exc
    x_train, x_test, y_train, y_test = parts
    return list(x_train), list(x_test), list(y_train), list(y_test)


def _serialize(pipeline: Pipeline) -> bytes:
    buffer = io.BytesIO()
    # Vocabularies land in the JSON schema uncompressed: deflate shrinks ~27 MB to under 1 MB.
    skops.io.dump(pipeline, buffer, compression=zipfile.ZIP_DEFLATED)
    payload = buffer.getvalue()
    # Fail here rather than publish a model the registry would refuse to load.
    refused = refused_types(untrusted_types(payload))
    if refused:
        raise RuntimeError(f"pipeline uses types outside the registry allow-list: {refused}")
    return payload


def _compact(pipeline: Pipeline, texts: list[str]) -> bytes:
    """The compact form that consumers serve, checked against the pipeline it came from."""
    payload = export(pipeline)
    served = compact.load(payload).predict_proba(texts)
    # Summation order differs, so allow rounding; anything more is a bug in the compact form.
    drift = float(abs(served - pipeline.predict_proba(texts)).max()) if texts else 0.0
    if drift > COMPACT_TOLERANCE:
        raise RuntimeError(f"compact model differs from the pipeline by {drift:g}")
    return payload


def publish(models_dir: Path, manifest: ModelManifest, files: dict[str, bytes]) -> None:
    """Write `files` (suffix -> bytes) as <version><suffix>, then the manifest, which lists it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = models_dir / f"{manifest.version}{MANIFEST_SUFFIX}"
    # Unlist first when replacing, so no reader pairs the old manifest with the new model.
    manifest_path.unlink(missing_ok=True)
    for suffix, payload in files.items():
        atomic_write(models_dir / f"{manifest.version}{suffix}", payload)
    atomic_write(manifest_path, manifest.to_json().encode("utf-8"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m classifier.train", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="label,text CSV")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    add_target(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    return run_publishing(
        args.models_dir,
        lambda: train(
            args.data,
            args.version,
            args.models_dir,
            test_size=args.test_size,
            seed=args.seed,
            overwrite=args.force,
            out=sys.stdout,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
