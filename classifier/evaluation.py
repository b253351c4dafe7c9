"""Held-out metrics of a fitted classifier: accuracy, per-label precision, recall and F1, and the
confusion matrix, in the manifest's label order. Shared by the trainer and `classifier.publish`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    # label -> {"precision", "recall", "f1", "support"}
    per_label: dict[str, dict[str, float]]
    # Rows are true labels, columns predicted ones, both in `labels` order.
    confusion: tuple[tuple[int, ...], ...]
    n_test: int


def evaluate(labels: Sequence[str], truth: Sequence[str], predicted: Sequence[str]) -> Evaluation:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    order = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=order, zero_division=0
    )
    per_label = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(order)
    }
    matrix: Any = confusion_matrix(truth, predicted, labels=order)
    return Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        per_label=per_label,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        n_test=len(truth),
    )


def report(evaluation: Evaluation) -> str:
    """The per-label table the trainer and the publisher print."""
    width = max([5, *(len(label) for label in evaluation.per_label)])
    lines = [f"{'label':<{width}}  precision  recall     f1  support"]
    for label, m in evaluation.per_label.items():
        lines.append(
            f"{label:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}"
            f"  {int(m['support']):7d}"
        )
    lines.append(f"accuracy {evaluation.accuracy:.4f} on {evaluation.n_test} held-out rows")
    lines.append("confusion matrix (rows: true label, columns: predicted, same order):")
    for label, row in zip(evaluation.per_label, evaluation.confusion, strict=True):
        lines.append(f"{label:<{width}}  " + " ".join(f"{n:6d}" for n in row))
    return "\n".join(lines) + "\n"
