"""Models through real processes: a three-label model trained and served; GET /v1/models; the
default switched and a version retired with `python -m classifier` while the API and a consumer
run, seen at once, and a job queued before the retirement still run."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.publish import publish_pipeline
from classifier.train import train
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.pipelines import UNTRUSTED_TYPE, fit_and_save, naive_bayes, unescaping_nb

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "support_intents.csv"
LABELS = ["billing", "shipping", "technical"]
BILLING = "I was charged twice for my subscription"


@pytest.fixture(scope="module")
def intents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("intent-models")
    train(DATA, "intents-v1", models_dir, test_size=0.3, seed=1)
    train(DATA, "intents-v2", models_dir, test_size=0.3, seed=2)
    built = tmp_path_factory.mktemp("user-pipelines")
    nb, nb_eval, _ = fit_and_save(naive_bayes(), built, "nb")
    published = run_module(
        "classifier.publish",
        str(nb),
        "--version",
        "intents-nb",
        "--eval",
        str(nb_eval),
        "--models-dir",
        str(models_dir),
    )
    assert published.returncode == 0, published.stderr
    # A type skops does not trust by default, trusted at publishing: consumers must load it.
    unescaping, _, _ = fit_and_save(unescaping_nb(), built, "unescaping")
    publish_pipeline(unescaping, "intents-html", models_dir, [UNTRUSTED_TYPE], out=io.StringIO())
    _legacy_copy(models_dir, "intents-v1", "legacy-v0")
    return models_dir


def _legacy_copy(models_dir: Path, version: str, legacy: str) -> None:
    """`version` as published before manifests held metrics, kind or pictures."""
    raw = json.loads((models_dir / f"{version}.json").read_text())
    for name in ("kind", "n_rows", "per_label", "confusion", "confusion_png", "trusted_types"):
        del raw[name]
    for suffix in (".skops", ".npz"):
        shutil.copy(models_dir / f"{version}{suffix}", models_dir / f"{legacy}{suffix}")
    (models_dir / f"{legacy}.json").write_text(json.dumps({**raw, "version": legacy}))


@pytest.fixture(scope="module")
def stack(make_service: ServiceFactory, intents_dir: Path) -> Service:
    # No consumer yet: a job is queued before its version is retired, then run.
    service = make_service(MODELS_DIR=str(intents_dir), DEFAULT_MODEL_VERSION="intents-v1")
    service.start("projector")
    service.start("api")
    return service


def manage(models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("classifier", "--models-dir", str(models_dir), *args)


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEFAULT_MODEL_VERSION": "intents-v1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def job_id_of(response) -> str:
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def test_models_are_listed_with_metrics_and_the_default(stack: Service):
    response = stack.http.get("/v1/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["default"] == "intents-v1"
    versions = {m["version"]: m for m in body["models"]}
    assert sorted(versions) == [
        "intents-html",
        "intents-nb",
        "intents-v1",
        "intents-v2",
        "legacy-v0",
    ]
    assert versions["intents-nb"]["kind"] == "user-pipeline"
    assert versions["intents-html"]["accuracy"] is None  # published without held-out rows
    one = versions["intents-v1"]
    assert (one["default"], one["retired"], one["replacement"]) == (True, False, None)
    assert not versions["intents-v2"]["default"]
    assert one["labels"] == LABELS and one["kind"] == "tfidf-lr"
    assert sorted(one["per_label"]) == LABELS
    assert one["confusion_matrix"]["labels"] == LABELS
    assert sum(map(sum, one["confusion_matrix"]["counts"])) == one["data"]["n_test"]
    assert one["data"]["rows"] == 108


def test_a_model_published_before_metrics_reads_with_empty_ones(stack: Service):
    body = stack.http.get("/v1/models/legacy-v0").json()
    assert (body["kind"], body["labels"], body["per_label"]) == ("tfidf-lr", LABELS, {})
    assert body["confusion_matrix"] == {"labels": LABELS, "counts": []}
    assert body["data"]["rows"] == body["data"]["n_train"] + body["data"]["n_test"]
    assert stack.http.get("/v1/models/legacy-v0/confusion.png").status_code == 404
    job = stack.http.post("/v1/inference", json={"text": BILLING, "model_version": "legacy-v0"})
    assert job.status_code == 202


def test_one_model_is_read_and_an_unknown_one_is_404(stack: Service):
    response = stack.http.get("/v1/models/intents-v2")
    assert response.status_code == 200
    assert response.json()["version"] == "intents-v2"
    missing = stack.http.get("/v1/models/intents-v9")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"] == "urn:inferflow:problem:http-404"


def test_the_confusion_matrix_is_served_as_a_picture(stack: Service, intents_dir: Path):
    response = stack.http.get("/v1/models/intents-v1/confusion.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == (intents_dir / "intents-v1.png").read_bytes()
    # Published without held-out rows: no matrix to draw.
    assert stack.http.get("/v1/models/intents-html/confusion.png").status_code == 404
    assert stack.http.get("/v1/models/intents-v9/confusion.png").status_code == 404


def test_listing_needs_a_key_with_the_read_scope(stack: Service):
    with stack.client_of("acme", "submit") as client:
        assert client.get("/v1/models").status_code == 403
    with stack.client(None) as anonymous:
        assert anonymous.get("/v1/models").status_code == 401


def test_default_switch_and_retirement_without_restart(stack: Service, intents_dir: Path):
    key = {"Idempotency-Key": "before-the-switch"}
    queued = job_id_of(stack.submit(BILLING, headers=key))
    assert stack.http.get(f"/v1/jobs/{queued}").json()["model_version"] == "intents-v1"

    switched = manage(intents_dir, "default", "intents-v2")
    assert switched.returncode == 0, switched.stderr
    assert "intents-v2 (default)" in switched.stdout
    after = job_id_of(stack.submit(BILLING))
    assert stack.http.get(f"/v1/jobs/{after}").json()["model_version"] == "intents-v2"
    # A retry of the first request is still its replay, though the default changed since.
    assert job_id_of(stack.submit(BILLING, headers=key)) == queued
    reused = stack.submit("another text", headers=key)
    assert reused.status_code == 422

    retired = manage(intents_dir, "retire", "intents-v1", "--replacement", "intents-v2")
    assert retired.returncode == 0, retired.stderr
    refused = stack.submit(BILLING, model_version="intents-v1")
    assert refused.status_code == 410
    # Sent again with the key it was accepted under, the first request is its replay.
    replayed = stack.submit(BILLING, model_version="intents-v1", headers=key)
    assert job_id_of(replayed) == queued
    assert stack.submit("another text", model_version="intents-v1", headers=key).status_code == 410
    problem = refused.json()
    assert problem["type"] == "urn:inferflow:problem:model-retired"
    assert problem["replacement"] == "intents-v2"
    listed = stack.http.get("/v1/models/intents-v1").json()
    assert (listed["retired"], listed["replacement"]) == (True, "intents-v2")

    # The consumer starts after the retirement: the job accepted before it still runs.
    stack.start_consumers(1)
    for job_id, version in ((queued, "intents-v1"), (after, "intents-v2")):
        job = stack.wait_terminal(job_id)
        assert job["status"] == "succeeded", job
        assert job["result"]["model_version"] == version
        assert job["result"]["label"] == "billing"
        assert sorted(job["result"]["probabilities"]) == LABELS


def test_a_batch_item_for_a_retired_version_names_the_replacement(stack: Service):
    items = [{"text": BILLING, "model_version": "intents-v1"}, {"text": BILLING}]
    response = stack.http.post("/v1/inference/batch", json={"items": items})
    assert response.status_code in (200, 202, 207), response.text
    results = response.json()["items"]
    assert results[0]["error"]["type"] == "urn:inferflow:problem:model-retired"
    assert results[0]["error"]["replacement"] == "intents-v2"
    assert results[1]["error"] is None


@pytest.mark.parametrize("version", ["intents-nb", "intents-html"])
def test_users_own_pipelines_are_served(stack: Service, version: str):
    if "consumer-0" not in stack.procs:
        stack.start_consumers(1)
    texts = {
        "billing": "Please refund the payment for the annual renewal",
        "shipping": "Tracking shows no update for the gift package",
        "technical": "Password reset does not work for the mobile app &amp; the dashboard",
    }
    jobs = {
        label: job_id_of(stack.submit(text, model_version=version)) for label, text in texts.items()
    }
    for label, job_id in jobs.items():
        job = stack.wait_terminal(job_id)
        assert job["status"] == "succeeded", job
        assert job["result"]["model_version"] == version
        assert job["result"]["label"] == label
        assert sum(job["result"]["probabilities"].values()) == pytest.approx(1.0)


def test_a_file_line_for_a_retired_version_names_the_replacement(stack: Service):
    lines = [
        {"custom_id": "old", "text": BILLING, "model_version": "intents-v1"},
        {"custom_id": "new", "text": BILLING},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    headers = {"Content-Type": "application/x-ndjson"}
    response = stack.http.post("/v1/batches", content=body, headers=headers)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    (bad,) = answer["bad_lines"]
    assert (bad["line"], bad["custom_id"]) == (1, "old")
    assert bad["error"]["type"] == "urn:inferflow:problem:model-retired"
    assert bad["error"]["replacement"] == "intents-v2"


def test_refused_changes_exit_2(intents_dir: Path):
    unknown = manage(intents_dir, "default", "intents-v9")
    assert unknown.returncode == 2 and "intents-v9" in unknown.stderr
    to_retired = manage(intents_dir, "default", "intents-v1")
    assert to_retired.returncode == 2 and "retired" in to_retired.stderr
