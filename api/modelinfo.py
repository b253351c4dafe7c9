"""What GET /v1/models and GET /v1/models/{version} answer: a published version's manifest and
how it serves (the default, retired and for what), built from the registry."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from classifier.errors import ModelIntegrityError, UnknownModelVersionError
from classifier.registry import ModelManifest, ModelRegistry
from classifier.serving import ServingState

log = logging.getLogger(__name__)

EXAMPLE_VERSION = "intents-v2"


class LabelMetrics(BaseModel):
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)
    f1: float = Field(ge=0, le=1)
    support: int = Field(ge=0, description="Held-out rows of this label.")


class ConfusionMatrix(BaseModel):
    labels: list[str] = Field(description="The order of the rows and of the columns.")
    counts: list[list[int]] = Field(
        description="counts[i][j]: held-out rows of labels[i] predicted as labels[j]; empty for "
        "a model published before the matrix was recorded."
    )


class TrainingData(BaseModel):
    sha256: str = Field(description="SHA-256 of the data set's file, as it was read.")
    rows: int = Field(ge=0, description="Rows of the data set, training and held-out together.")
    n_train: int = Field(ge=0)
    n_test: int = Field(ge=0, description="Held-out rows the metrics were measured on.")


class ModelBody(BaseModel):
    version: str = Field(examples=[EXAMPLE_VERSION])
    kind: str = Field(
        description="tfidf-lr: trained by classifier.train; user-pipeline: a user's own "
        "scikit-learn pipeline, published with classifier.publish.",
        examples=["tfidf-lr"],
    )
    labels: list[str] = Field(examples=[["billing", "shipping", "technical"]])
    default: bool = Field(description="Whether submissions without model_version get it.")
    retired: bool = Field(description="Retired: new submissions for it are refused (410).")
    replacement: str | None = Field(
        description="The version to send instead, when retired; else null."
    )
    created_at: str = Field(examples=["2026-12-06T22:31:35Z"])
    accuracy: float | None = Field(
        ge=0,
        le=1,
        description="On the held-out rows; null for a user's pipeline published without them.",
    )
    per_label: dict[str, LabelMetrics] = Field(
        description="Held-out precision, recall and F1 per label; empty for old models."
    )
    confusion_matrix: ConfusionMatrix
    data: TrainingData
    sha256: str = Field(description="SHA-256 of the model's .skops file.")
    sklearn_version: str
    skops_version: str


class ModelList(BaseModel):
    default: str = Field(
        description="The version submissions without model_version get.", examples=["intents-v2"]
    )
    models: list[ModelBody] = Field(description="Every published version, by name.")


def model_body(manifest: ModelManifest, state: ServingState, default: str) -> ModelBody:
    retired = manifest.version in state.retired
    return ModelBody(
        version=manifest.version,
        kind=manifest.kind,
        labels=list(manifest.labels),
        default=manifest.version == default,
        retired=retired,
        replacement=state.replacement(manifest.version) if retired else None,
        created_at=manifest.created_at,
        accuracy=manifest.accuracy if manifest.n_test else None,
        per_label={k: LabelMetrics.model_validate(v) for k, v in manifest.per_label.items()},
        confusion_matrix=ConfusionMatrix(
            labels=list(manifest.labels), counts=[list(row) for row in manifest.confusion]
        ),
        data=TrainingData(
            sha256=manifest.data_sha256,
            rows=manifest.n_rows,
            n_train=manifest.n_train,
            n_test=manifest.n_test,
        ),
        sha256=manifest.sha256,
        sklearn_version=manifest.sklearn_version,
        skops_version=manifest.skops_version,
    )


def model_list(registry: ModelRegistry, default: str) -> ModelList:
    """Every published version, by name; `default`: the version submissions without one get."""
    state = registry.serving.current()
    models = []
    for version in registry.versions():
        try:
            manifest = registry.manifest(version)
        except (ModelIntegrityError, UnknownModelVersionError) as exc:
            # One broken or just-removed manifest must not hide every other model.
            log.warning("model %s not listed: %s", version, exc)
            continue
        models.append(model_body(manifest, state, default))
    return ModelList(default=default, models=models)
