"""The trainer on three labels: per-label metrics, the confusion matrix and its picture, the
data set's hash and size; and manifests written before those fields existed."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from classifier import heatmap
from classifier.registry import ModelManifest, ModelRegistry, sha256_bytes
from classifier.train import LARGE_CORPUS_ROWS, build_pipeline, train

DATA = Path(__file__).resolve().parents[1] / "data" / "support_intents.csv"
VERSION = "intents-test-v1"
LABELS = ("billing", "shipping", "technical")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelManifest, Path]:
    models_dir = tmp_path_factory.mktemp("models")
    return train(DATA, VERSION, models_dir, test_size=0.3), models_dir


def test_three_labels_train_with_per_label_metrics(trained: tuple[ModelManifest, Path]) -> None:
    manifest, _ = trained
    assert manifest.labels == LABELS
    assert sorted(manifest.per_label) == list(LABELS)
    for metrics in manifest.per_label.values():
        assert set(metrics) == {"precision", "recall", "f1", "support"}
        assert metrics["f1"] >= 0.8
    assert sum(m["support"] for m in manifest.per_label.values()) == manifest.n_test
    assert manifest.accuracy >= 0.85


def test_confusion_matrix_counts_every_held_out_row(trained: tuple[ModelManifest, Path]) -> None:
    manifest, _ = trained
    assert len(manifest.confusion) == 3 and all(len(row) == 3 for row in manifest.confusion)
    assert sum(map(sum, manifest.confusion)) == manifest.n_test
    correct = sum(manifest.confusion[i][i] for i in range(3))
    assert correct / manifest.n_test == pytest.approx(manifest.accuracy)
    for i, label in enumerate(LABELS):
        assert sum(manifest.confusion[i]) == manifest.per_label[label]["support"]


def test_the_report_shows_each_label_and_the_matrix(tmp_path: Path) -> None:
    out = io.StringIO()
    manifest = train(DATA, "report-v1", tmp_path, test_size=0.3, out=out)
    lines = out.getvalue().splitlines()
    for label, row in zip(LABELS, manifest.confusion, strict=True):
        metrics = manifest.per_label[label]
        assert any(line.split()[:2] == [label, f"{metrics['precision']:.3f}"] for line in lines)
        assert [label, *map(str, row)] in [line.split() for line in lines]
    assert lines[-1] == f"confusion matrix: {tmp_path / 'report-v1.png'}"


def test_data_hash_and_size_are_recorded(trained: tuple[ModelManifest, Path]) -> None:
    manifest, _ = trained
    assert manifest.data_sha256 == sha256_bytes(DATA.read_bytes())
    assert manifest.n_rows == 108 == manifest.n_train + manifest.n_test


def test_confusion_png_is_written_beside_the_manifest(trained: tuple[ModelManifest, Path]) -> None:
    manifest, models_dir = trained
    assert manifest.confusion_png == f"{VERSION}.png"
    png = (models_dir / manifest.confusion_png).read_bytes()
    assert png == heatmap.render(manifest.confusion)


def test_three_label_model_predicts_each_label(trained: tuple[ModelManifest, Path]) -> None:
    classifier = ModelRegistry(trained[1]).load(VERSION)
    texts = [
        "I was charged twice for my order",
        "The courier has not delivered the new headphones",
        "The app crashes when I open the dashboard",
    ]
    predictions = classifier.predict(texts)
    assert [p.label for p in predictions] == list(LABELS)
    assert all(set(p.probabilities) == set(LABELS) for p in predictions)


def test_manifest_without_the_new_fields_reads_with_defaults(
    trained: tuple[ModelManifest, Path],
) -> None:
    raw = json.loads(trained[0].to_json())
    for name in ("kind", "n_rows", "per_label", "confusion", "confusion_png", "trusted_types"):
        del raw[name]
    old = ModelManifest.from_json(json.dumps(raw))
    assert old.kind == "tfidf-lr"
    assert old.n_rows == old.n_train + old.n_test
    assert (old.per_label, old.confusion, old.confusion_png, old.trusted_types) == ({}, (), "", ())


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    assert png[:8] == heatmap.SIGNATURE
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        at += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    return width, height, zlib.decompress(chunks[b"IDAT"])


def test_heatmap_shades_cells_by_count() -> None:
    width, height, raw = _png_pixels(heatmap.render([[4, 0], [1, 2]], cell_px=2))
    assert width == height == 2 * 3 + 1
    stride = 1 + width * 3
    assert len(raw) == height * stride

    def pixel(x: int, y: int) -> tuple[int, ...]:
        start = y * stride + 1 + x * 3
        return tuple(raw[start : start + 3])

    assert pixel(1, 1) == heatmap.DARK  # the largest count
    assert pixel(4, 1) == (255, 255, 255)  # zero
    assert pixel(0, 0) == heatmap.GRID
    light, mid = pixel(1, 4), pixel(4, 4)  # 1 and 2 of 4
    assert 255 > light[0] > mid[0] > heatmap.DARK[0]


def test_heatmap_refuses_a_matrix_that_is_not_square() -> None:
    with pytest.raises(ValueError):
        heatmap.render([[1, 2]])


def test_a_large_corpus_leaves_out_n_grams_of_a_single_text() -> None:
    def min_dfs(rows: int) -> list[int]:
        union = build_pipeline(seed=0, rows=rows).named_steps["features"]
        return [vectorizer.min_df for _, vectorizer in union.transformer_list]

    assert min_dfs(LARGE_CORPUS_ROWS - 1) == [1, 1]
    assert min_dfs(LARGE_CORPUS_ROWS) == [2, 2]
