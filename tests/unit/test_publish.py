"""Publishing a user's own pipeline: other estimators served with scikit-learn, the compact form
kept for the pipelines it reproduces, and types skops does not trust refused until trusted."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.cli import TrainingInputError
from classifier.errors import ModelIntegrityError
from classifier.publish import held_types, publish_pipeline
from classifier.registry import ModelRegistry
from tests.pipelines import (
    UNTRUSTED_TYPE,
    fit_and_save,
    hinge_sgd,
    logistic,
    naive_bayes,
    unescaping_nb,
)

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("billing", "shipping", "technical")
TEXTS = [
    "Please refund the payment for my subscription",
    "Where is the parcel with the gift package",
    "I cannot log in to the web console",
]


def test_a_naive_bayes_pipeline_is_published_evaluated_and_served(tmp_path: Path) -> None:
    model, eval_csv, fitted = fit_and_save(naive_bayes(), tmp_path, "nb")
    out = io.StringIO()
    manifest = publish_pipeline(model, "intents-nb", tmp_path / "models", [], eval_csv, out=out)
    assert "sklearn.naive_bayes.MultinomialNB" in out.getvalue()
    assert (manifest.kind, manifest.labels, manifest.trusted_types) == ("user-pipeline", LABELS, ())
    assert manifest.compact_sha256 == ""  # not a TF-IDF + logistic regression: scikit-learn
    assert manifest.n_test == 33 == sum(map(sum, manifest.confusion))
    assert manifest.accuracy >= 0.8 and sorted(manifest.per_label) == list(LABELS)
    assert (tmp_path / "models" / "intents-nb.png").is_file()
    served = ModelRegistry(tmp_path / "models").load("intents-nb").predict(TEXTS)
    assert [p.label for p in served] == list(LABELS)
    expected = fitted.predict_proba(TEXTS)
    for prediction, row in zip(served, expected, strict=True):
        assert [prediction.probabilities[label] for label in LABELS] == pytest.approx(row)


def test_held_out_rows_with_labels_the_pipeline_lacks_are_refused(tmp_path: Path) -> None:
    model, eval_csv, _ = fit_and_save(naive_bayes(), tmp_path, "nb")
    eval_csv.write_text(eval_csv.read_text().replace("billing,", "refunds,"))
    with pytest.raises(TrainingInputError, match="refunds"):
        publish_pipeline(model, "nb", tmp_path / "models", [], eval_csv, out=io.StringIO())
    assert not (tmp_path / "models" / "nb.json").exists()


def test_decision_function_scores_become_a_softmax(tmp_path: Path) -> None:
    model, _, fitted = fit_and_save(hinge_sgd(), tmp_path, "sgd")
    assert not hasattr(fitted, "predict_proba")
    publish_pipeline(model, "intents-sgd", tmp_path / "models", [], out=io.StringIO())
    served = ModelRegistry(tmp_path / "models").load("intents-sgd").predict(TEXTS)
    scores = fitted.decision_function(TEXTS)
    softmax = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    for prediction, row, label in zip(served, softmax, fitted.predict(TEXTS), strict=True):
        assert prediction.label == label
        assert [prediction.probabilities[c] for c in LABELS] == pytest.approx(row)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)


def test_without_held_out_rows_there_are_no_metrics(tmp_path: Path) -> None:
    model, _, _ = fit_and_save(naive_bayes(), tmp_path, "nb")
    manifest = publish_pipeline(model, "nb", tmp_path / "models", [], out=io.StringIO())
    assert (manifest.n_test, manifest.per_label, manifest.confusion_png) == (0, {}, "")


def test_a_pipeline_the_compact_form_reproduces_gets_it(tmp_path: Path) -> None:
    model, eval_csv, fitted = fit_and_save(logistic(), tmp_path, "lr")
    out = io.StringIO()
    manifest = publish_pipeline(model, "intents-lr", tmp_path / "models", [], eval_csv, out=out)
    assert manifest.compact_sha256 and "compact form (numpy only)" in out.getvalue()
    served = ModelRegistry(tmp_path / "models").load("intents-lr").predict(TEXTS)
    assert [p.label for p in served] == list(fitted.predict(TEXTS))


def test_an_untrusted_type_is_refused_until_trusted(tmp_path: Path) -> None:
    model, eval_csv, _ = fit_and_save(unescaping_nb(), tmp_path, "lower")
    models_dir = tmp_path / "models"
    assert UNTRUSTED_TYPE in held_types(model.read_bytes())
    with pytest.raises(TrainingInputError, match=UNTRUSTED_TYPE):
        publish_pipeline(model, "lower", models_dir, [], eval_csv, out=io.StringIO())
    with pytest.raises(TrainingInputError, match=UNTRUSTED_TYPE):
        publish_pipeline(model, "lower", models_dir, ["numpy.ndarray"], out=io.StringIO())
    assert ModelRegistry(models_dir).versions() == ()
    manifest = publish_pipeline(model, "lower", models_dir, [UNTRUSTED_TYPE], eval_csv)
    assert manifest.trusted_types == (UNTRUSTED_TYPE,)
    served = ModelRegistry(models_dir).load("lower").predict(TEXTS)
    assert [p.label for p in served] == list(LABELS)


def test_consumers_trust_only_what_the_manifest_records(tmp_path: Path) -> None:
    model, _, _ = fit_and_save(unescaping_nb(), tmp_path, "lower")
    models_dir = tmp_path / "models"
    publish_pipeline(model, "lower", models_dir, [UNTRUSTED_TYPE], out=io.StringIO())
    manifest_path = models_dir / "lower.json"
    raw = json.loads(manifest_path.read_text())
    raw["trusted_types"] = []
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ModelIntegrityError, match=UNTRUSTED_TYPE):
        ModelRegistry(models_dir).load("lower")


def test_the_cli_shows_the_types_and_exits_2_without_trust(tmp_path: Path) -> None:
    model, _, _ = fit_and_save(unescaping_nb(), tmp_path, "lower")
    models_dir = tmp_path / "models"

    def publish(*extra: str) -> subprocess.CompletedProcess[str]:
        args = [str(model), "--version", "lower", "--models-dir", str(models_dir), *extra]
        return subprocess.run(
            [sys.executable, "-m", "classifier.publish", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = publish()
    assert refused.returncode == 2
    assert f"{UNTRUSTED_TYPE}  (needs --trust)" in refused.stdout
    assert "sklearn.naive_bayes.MultinomialNB" in refused.stdout
    assert "--trust" in refused.stderr
    trusted = publish("--trust", UNTRUSTED_TYPE)
    assert trusted.returncode == 0, trusted.stderr
    assert "published lower" in trusted.stdout
