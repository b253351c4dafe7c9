"""The classifier package: corpus, training, registry integrity, and prediction."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import skops.io

from classifier.errors import UnknownModelVersionError
from classifier.registry import (
    Classifier,
    ModelIntegrityError,
    ModelManifest,
    ModelRegistry,
    sha256_bytes,
)
from classifier.train import DEFAULT_DATA, TrainingInputError, train
from domain.errors import PermanentError

ROOT = Path(__file__).resolve().parents[2]
VERSION = "spam-test-v1"

SPAMMY = [
    "WINNER!! You have won a FREE cruise, call now to claim your prize!!!",
    "URGENT: your bank account is suspended, verify your password at secure-login-check.biz",
    "Get a payday loan of $2000 today, no credit check, apply now",
]
HAMMY = [
    "Can we move tomorrow's meeting to 3pm? I have a clash",
    "I'll pick the kids up from school and then head home for dinner",
    "Thanks for sending the report, I'll read it tonight",
]

POSITIVE = [
    "I loved this film, the acting was wonderful",
    "Great service and friendly staff, will come back",
    "Absolutely fantastic meal, best pasta in town",
    "The hotel room was spotless and the view was amazing",
    "What a brilliant book, I could not put it down",
    "Delivery was quick and the product works perfectly",
    "Lovely experience, the guide was funny and knowledgeable",
    "This phone is excellent, battery lasts all day",
    "Superb concert, the band sounded great live",
    "Really happy with my purchase, great value",
    "The course was inspiring and very well organised",
    "Wonderful little cafe with delicious cakes",
    "Friendly neighbourhood, great parks, love living here",
    "The app is fast, simple and a joy to use",
    "Fantastic support team, they solved my issue in minutes",
    "Beautiful garden, we enjoyed every minute of the visit",
    "Great headphones, comfortable and the sound is rich",
    "The kids loved the show, such a happy afternoon",
    "Excellent value for money, highly recommend it",
    "Best holiday we have had in years, loved it",
    "Brilliant teacher, patient and encouraging",
    "I am delighted with the new sofa, so comfortable",
]
NEGATIVE = [
    "I hated this film, the plot was boring and slow",
    "Terrible service, rude staff, never coming back",
    "Awful meal, the pasta was cold and bland",
    "The hotel room was dirty and smelled bad",
    "What a dull book, I gave up halfway",
    "Delivery was late and the product arrived broken",
    "Disappointing tour, the guide was bored and rushed us",
    "This phone is terrible, battery dies by noon",
    "Awful concert, the sound was muddy and too loud",
    "Really unhappy with my purchase, waste of money",
    "The course was confusing and badly organised",
    "Grim cafe with stale cakes and weak coffee",
    "Noisy neighbourhood, dirty streets, hate living here",
    "The app is slow, buggy and crashes constantly",
    "Useless support team, nobody answered for a week",
    "Neglected garden, nothing worth seeing, boring visit",
    "Cheap headphones, uncomfortable and the sound is tinny",
    "The kids were bored by the show, a wasted afternoon",
    "Poor value for money, would not recommend it",
    "Worst holiday we have had in years, hated it",
    "Terrible teacher, impatient and dismissive",
    "I am disappointed with the new sofa, so uncomfortable",
]


def write_csv(path: Path, header: list[str], rows: Sequence[tuple[str, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sentiment_rows() -> list[tuple[str, str]]:
    return [("positive", t) for t in POSITIVE] + [("negative", t) for t in NEGATIVE]


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelManifest, Path]:
    models_dir = tmp_path_factory.mktemp("models")
    return train(DEFAULT_DATA, VERSION, models_dir), models_dir


@pytest.fixture(scope="module")
def registry(trained: tuple[ModelManifest, Path]) -> ModelRegistry:
    # Shared, so its cache loads the model once for all prediction tests.
    return ModelRegistry(trained[1])


def copy_models(source: Path, target: Path) -> ModelRegistry:
    """A private copy, so tampering tests never break the shared trained model."""
    shutil.copytree(source, target)
    return ModelRegistry(target)


# --- corpus -----------------------------------------------------------------------------------


def test_corpus_is_large_balanced_and_free_of_duplicates() -> None:
    with DEFAULT_DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = Counter(row["label"] for row in rows)
    texts = [row["text"] for row in rows]
    assert len(rows) >= 600
    assert set(labels) == {"spam", "ham"}
    assert min(labels.values()) / len(rows) > 0.4
    assert len(set(texts)) == len(texts)
    assert all(text.strip() for text in texts)
    assert {"label": "spam", "text": "limited time offer, click now"} in rows


# --- training ---------------------------------------------------------------------------------


def test_training_reaches_held_out_accuracy(trained: tuple[ModelManifest, Path]) -> None:
    manifest, models_dir = trained
    assert manifest.accuracy >= 0.95
    assert manifest.labels == ("ham", "spam")
    assert manifest.n_test > 0 and manifest.n_train > 3 * manifest.n_test
    assert manifest.data_sha256 == sha256_bytes(DEFAULT_DATA.read_bytes())
    assert manifest.sha256 == sha256_bytes((models_dir / f"{VERSION}.skops").read_bytes())
    assert manifest.compact_sha256 == sha256_bytes((models_dir / f"{VERSION}.npz").read_bytes())


def test_publishing_leaves_model_manifest_and_picture(trained: tuple[ModelManifest, Path]) -> None:
    names = sorted(p.name for p in trained[1].iterdir())
    assert names == [f"{VERSION}.json", f"{VERSION}.npz", f"{VERSION}.png", f"{VERSION}.skops"]


def test_manifest_round_trips_through_json(trained: tuple[ModelManifest, Path]) -> None:
    manifest = trained[0]
    assert ModelManifest.from_json(manifest.to_json()) == manifest


def test_existing_version_is_not_overwritten_without_force(
    trained: tuple[ModelManifest, Path],
) -> None:
    with pytest.raises(TrainingInputError, match="already exists"):
        train(DEFAULT_DATA, VERSION, trained[1])


def test_user_csv_with_other_labels_trains_deterministically(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "reviews.csv", ["label", "text"], sentiment_rows())
    first = train(data, "reviews-v1", tmp_path / "a", test_size=0.25, seed=7)
    second = train(data, "reviews-v1", tmp_path / "b", test_size=0.25, seed=7)
    assert first.labels == ("negative", "positive")
    assert (first.n_train, first.n_test) == (33, 11)
    assert first.accuracy == second.accuracy
    texts = ["friendly staff and a great meal", "rude staff and a cold, awful meal"]
    a = ModelRegistry(tmp_path / "a").load("reviews-v1").predict(texts)
    b = ModelRegistry(tmp_path / "b").load("reviews-v1").predict(texts)
    assert a == b
    assert [p.label for p in a] == ["positive", "negative"]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["label", "body"], [("spam", "x")] * 30, "missing column"),
        (["label", "text"], [("ham", f"message {i}") for i in range(30)], "at least 2 classes"),
        (["label", "text"], [("ham", "hi"), ("spam", "win")] * 4, "need at least"),
        (["label", "text"], [("ham", f"m{i}") for i in range(30)] + [("spam", "win")], "fewer"),
    ],
)
def test_unusable_csv_is_refused(
    tmp_path: Path, header: list[str], rows: list[tuple[str, ...]], message: str
) -> None:
    data = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(TrainingInputError, match=message):
        train(data, "bad-v1", tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_cli_rejects_csv_without_text_column(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "bad.csv", ["label", "message"], [("spam", "win now")] * 30)
    result = run_python(
        "-m", "classifier.train", "--data", str(data), "--models-dir", str(tmp_path / "m")
    )
    assert result.returncode == 2
    assert "text" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "m").exists()


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_trained_version(registry: ModelRegistry) -> None:
    assert registry.versions() == (VERSION,)
    assert registry.has(VERSION)
    assert registry.manifest(VERSION).version == VERSION


def test_registry_on_missing_directory_is_empty(tmp_path: Path) -> None:
    assert ModelRegistry(tmp_path / "nowhere").versions() == ()


@pytest.mark.parametrize("version", ["no-such-model", "../etc/passwd", ""])
def test_unknown_version_is_rejected(registry: ModelRegistry, version: str) -> None:
    assert not registry.has(version)
    with pytest.raises(UnknownModelVersionError) as caught:
        registry.load(version)
    assert caught.value.known == (VERSION,)


def test_load_is_cached(registry: ModelRegistry) -> None:
    assert registry.load(VERSION) is registry.load(VERSION)


def legacy(registry: ModelRegistry) -> ModelRegistry:
    """The registry's model as trained before the compact form: its manifest names none."""
    path = registry.models_dir / f"{VERSION}.json"
    manifest = ModelManifest.from_json(path.read_text())
    path.write_text(ModelManifest(**{**manifest.__dict__, "compact_sha256": ""}).to_json())
    (registry.models_dir / f"{VERSION}.npz").unlink()
    return ModelRegistry(registry.models_dir)


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".npz", ".skops"])
def test_tampered_model_is_refused(
    trained: tuple[ModelManifest, Path], tmp_path: Path, suffix: str
) -> None:
    copy = copy_models(trained[1], tmp_path / "models")
    if suffix == ".skops":  # read only for models without a compact form
        copy = legacy(copy)
    tamper(tmp_path / "models" / f"{VERSION}{suffix}")
    with pytest.raises(ModelIntegrityError, match=f"{suffix}: sha256") as caught:
        copy.load(VERSION)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize("suffix", [".npz", ".skops"])
def test_missing_model_file_is_refused(
    trained: tuple[ModelManifest, Path], tmp_path: Path, suffix: str
) -> None:
    copy = copy_models(trained[1], tmp_path / "models")
    if suffix == ".skops":
        copy = legacy(copy)
    (tmp_path / "models" / f"{VERSION}{suffix}").unlink()
    with pytest.raises(ModelIntegrityError, match="cannot read"):
        copy.load(VERSION)


def test_a_model_without_a_compact_form_loads_its_pipeline(
    trained: tuple[ModelManifest, Path], registry: ModelRegistry, tmp_path: Path
) -> None:
    old = legacy(copy_models(trained[1], tmp_path / "models"))
    texts = SPAMMY + HAMMY
    served = registry.load(VERSION).predict(texts)
    from_pipeline = old.load(VERSION).predict(texts)
    assert [p.label for p in from_pipeline] == [p.label for p in served]
    for a, b in zip(from_pipeline, served, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-12)


class Smuggled:
    """A type that is on no allow-list: loading it would run arbitrary constructors."""


def test_untrusted_types_are_refused_even_with_a_valid_hash(
    trained: tuple[ModelManifest, Path], tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    skops.io.dump(Smuggled(), buffer)
    payload = buffer.getvalue()
    (tmp_path / "evil.skops").write_bytes(payload)
    fields = {
        **trained[0].__dict__,
        "version": "evil",
        "sha256": sha256_bytes(payload),
        "compact_sha256": "",  # so the registry reads the .skops file
    }
    (tmp_path / "evil.json").write_text(ModelManifest(**fields).to_json())
    with pytest.raises(ModelIntegrityError, match="Smuggled"):
        ModelRegistry(tmp_path).load("evil")


# --- prediction -------------------------------------------------------------------------------


def test_predicts_spam_and_ham(registry: ModelRegistry) -> None:
    classifier = registry.load(VERSION)
    predictions = classifier.predict(SPAMMY + HAMMY)
    assert classifier.version == VERSION
    assert [p.label for p in predictions] == ["spam"] * len(SPAMMY) + ["ham"] * len(HAMMY)
    for prediction in predictions:
        assert set(prediction.probabilities) == {"spam", "ham"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
        assert prediction.score == prediction.probabilities[prediction.label]
        assert prediction.score >= 0.5


def test_seed_demo_text_is_spam(registry: ModelRegistry) -> None:
    [prediction] = registry.load(VERSION).predict(["limited time offer, click now"])
    assert prediction.label == "spam"


class _Rows(list[list[float]]):
    """Mimics the ndarray that predict_proba returns, as far as Classifier uses it."""

    def tolist(self) -> list[list[float]]:
        return list(self)


class CountingPipeline:
    classes_ = ("ham", "spam")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: list[str]) -> _Rows:
        self.calls.append(texts)
        return _Rows([[0.25, 0.75] for _ in texts])


def test_batch_is_one_predict_proba_call() -> None:
    pipeline = CountingPipeline()
    predictions = Classifier("fake", pipeline).predict(["a", "b", "c"])
    assert pipeline.calls == [["a", "b", "c"]]
    assert [(p.label, p.score) for p in predictions] == [("spam", 0.75)] * 3


def test_empty_batch_skips_the_model() -> None:
    pipeline = CountingPipeline()
    assert Classifier("fake", pipeline).predict([]) == []
    assert pipeline.calls == []


# --- import weight ----------------------------------------------------------------------------


def test_registry_import_does_not_load_sklearn() -> None:
    code = (
        "import classifier.registry, sys; "
        "heavy = [m for m in ('sklearn', 'skops', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr


def test_serving_a_model_does_not_load_sklearn(trained: tuple[ModelManifest, Path]) -> None:
    # scikit-learn and skops alone cost a consumer over 100 MB resident.
    code = (
        "import sys, consumer.__main__; from pathlib import Path; "
        "from classifier.registry import ModelRegistry; "
        f"r = ModelRegistry(Path(sys.argv[1])); r.load({VERSION!r}).predict(['win now', 'hi']); "
        "heavy = [m for m in ('sklearn', 'skops', 'scipy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = run_python("-c", code, str(trained[1]))
    assert result.returncode == 0, result.stderr
