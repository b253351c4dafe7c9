"""Publish a user's own fitted scikit-learn text pipeline to a models directory.

    python -m classifier.publish PIPELINE.skops --version V [--trust TYPE ...]
                                 [--eval CSV] [--models-dir DIR] [--force]

The pipeline takes raw texts and ends in a classifier with ``predict_proba``, or with
``decision_function``, whose scores the service turns into probabilities: a softmax over the
classes' scores (two classes: the logistic sigmoid of the one score, for ``classes_[1]``).

The file is saved with ``skops.io.dump``. Before anything is loaded, every type it holds is
shown, and the types skops would not load by default (``skops.io.get_untrusted_types``) beyond
the registry's own allow-list must each be named with ``--trust``: a type named there can run
code when the file is loaded, by every consumer. The trusted types are recorded in the
manifest, and consumers trust exactly those.

With ``--eval CSV`` (``label,text``, held-out rows the pipeline never saw) the manifest holds
accuracy, per-label metrics and the confusion matrix (and its picture), and when the compact
form (``classifier.compact``) reproduces the pipeline on those rows, it is published beside it
for consumers to serve without scikit-learn; otherwise consumers run the pipeline itself.

Exit code 2 means the input was refused (untrusted types, not a classifier, bad version).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import sklearn
import skops
import skops.io

from classifier import compact, heatmap
from classifier.cli import TrainingInputError, add_target, run_publishing
from classifier.evaluation import evaluate, report
from classifier.export import export
from classifier.registry import (
    COMPACT_SUFFIX,
    CONFUSION_SUFFIX,
    KIND_USER,
    MODEL_SUFFIX,
    TRUSTED_TYPES,
    ModelManifest,
    sha256_bytes,
    untrusted_types,
)
from classifier.train import (
    COMPACT_TOLERANCE,
    check_target,
    evaluation_fields,
    load_dataset,
    now,
    publish,
)


def held_types(payload: bytes) -> list[str]:
    """Every type the skops file holds, as module.name, from its schema (nothing is loaded)."""
    try:
        schema = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise TrainingInputError(f"not a skops file: {exc}") from exc
    return sorted(set(_types(schema)))


def _types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "__class__" in node and "__module__" in node:
            yield f"{node['__module__']}.{node['__class__']}"
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types(value)


def needing_trust(payload: bytes) -> list[str]:
    """The types that skops would not load by default and the registry does not allow."""
    return sorted(set(untrusted_types(payload)) - TRUSTED_TYPES)


def publish_pipeline(
    path: Path,
    version: str,
    models_dir: Path,
    trust: list[str],
    eval_path: Path | None = None,
    *,
    overwrite: bool = False,
    out: TextIO = sys.stdout,
) -> ModelManifest:
    models_dir = Path(models_dir)
    check_target(version, models_dir, overwrite)
    try:
        payload = Path(path).read_bytes()
    except OSError as exc:
        raise TrainingInputError(f"cannot read {path}: {exc}") from exc
    out.write(f"{path} holds these types:\n")
    pending = needing_trust(payload)
    for name in held_types(payload):
        out.write(f"  {name}{'  (needs --trust)' if name in pending else ''}\n")
    refused = sorted(set(pending) - set(trust))
    if refused:
        raise TrainingInputError(
            "untrusted types (each can run code when loaded): "
            + ", ".join(refused)
            + "; review them, then pass --trust TYPE for each"
        )
    pipeline = _load(payload)
    labels = tuple(str(c) for c in pipeline.classes_)
    files = {MODEL_SUFFIX: payload}
    fields: dict[str, Any] = {}
    accuracy, n_test, n_rows, data_sha256 = 0.0, 0, 0, ""
    if eval_path is not None:
        data = load_dataset(eval_path)
        unknown = sorted(set(data.labels) - set(labels))
        if unknown:
            raise TrainingInputError(f"{eval_path}: labels the pipeline does not know: {unknown}")
        scores = evaluate(labels, data.labels, [str(p) for p in pipeline.predict(data.texts)])
        out.write(report(scores))
        accuracy, n_test, data_sha256 = scores.accuracy, scores.n_test, data.sha256
        n_rows = n_test
        fields = evaluation_fields(version, scores)
        files[CONFUSION_SUFFIX] = heatmap.render(scores.confusion)
        compact_payload = _compact_or_none(pipeline, data.texts, out)
        if compact_payload is not None:
            files[COMPACT_SUFFIX] = compact_payload
    manifest = ModelManifest(
        version=version,
        sha256=sha256_bytes(payload),
        created_at=now(),
        accuracy=accuracy,
        n_train=0,
        n_test=n_test,
        labels=labels,
        sklearn_version=sklearn.__version__,
        skops_version=skops.__version__,
        data_sha256=data_sha256,
        compact_sha256=sha256_bytes(files[COMPACT_SUFFIX]) if COMPACT_SUFFIX in files else "",
        kind=KIND_USER,
        n_rows=n_rows,
        trusted_types=tuple(pending),
        **fields,
    )
    publish(models_dir, manifest, files)
    return manifest


def _load(payload: bytes) -> Any:
    # Every untrusted type was allowed above: by the registry's list or by --trust.
    try:
        pipeline = skops.io.load(io.BytesIO(payload), trusted=untrusted_types(payload))
    except Exception as exc:  # skops raises many kinds on a malformed archive
        raise TrainingInputError(f"cannot load the pipeline: {exc}") from exc
    scorer = hasattr(pipeline, "predict_proba") or hasattr(pipeline, "decision_function")
    if not (scorer and hasattr(pipeline, "classes_")):
        raise TrainingInputError(
            f"{type(pipeline).__name__} is not a fitted classifier with predict_proba or "
            "decision_function"
        )
    return pipeline


def _compact_or_none(pipeline: Any, texts: list[str], out: TextIO) -> bytes | None:
    """The compact form when it reproduces the pipeline on `texts`, else None (and why)."""
    try:
        payload = export(pipeline)
        served = compact.load(payload).predict_proba(texts)
        drift = float(abs(served - pipeline.predict_proba(texts)).max())
    except compact.UnsupportedPipelineError as exc:
        out.write(f"consumers run scikit-learn: the compact form cannot reproduce {exc}\n")
        return None
    if drift > COMPACT_TOLERANCE:
        out.write(f"consumers run scikit-learn: the compact form differs by {drift:g}\n")
        return None
    out.write("consumers serve the compact form (numpy only)\n")
    return payload


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.publish",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipeline", type=Path, help="a fitted pipeline saved with skops.io.dump")
    parser.add_argument("--version", required=True)
    parser.add_argument(
        "--trust", action="append", default=[], metavar="TYPE", help="trust TYPE (repeatable)"
    )
    parser.add_argument("--eval", type=Path, help="held-out label,text CSV")
    add_target(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    return run_publishing(
        args.models_dir,
        lambda: publish_pipeline(
            args.pipeline,
            args.version,
            args.models_dir,
            args.trust,
            args.eval,
            overwrite=args.force,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
