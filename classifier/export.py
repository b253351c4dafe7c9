"""Exporting a fitted scikit-learn pipeline to the compact form (`classifier.compact`).

Only the trainer runs this. It reads the fitted attributes by name, without importing
scikit-learn, and refuses any setting the compact form does not reproduce, so a pipeline it
cannot serve exactly is never published.
"""

from __future__ import annotations

import io
import json
from typing import Any

from classifier.compact import FORMAT, FORMAT_VERSION, BlockSpec, UnsupportedPipelineError

# The vectorizer parameters this module reproduces; anything else changes the features.
_REQUIRED_PARAMS: dict[str, Any] = {
    "input": "content",
    "strip_accents": None,
    "preprocessor": None,
    "tokenizer": None,
    "stop_words": None,
    "binary": False,
}


def export(pipeline: Any) -> bytes:
    """The compact model of a fitted ``Pipeline([FeatureUnion of TfidfVectorizer, LR])``, or of
    ``Pipeline([TfidfVectorizer, LR])``."""
    import numpy as np

    vectorizers, model = _steps(pipeline)
    blocks: list[dict[str, Any]] = []
    arrays: dict[str, Any] = {}
    for i, vectorizer in enumerate(vectorizers):
        spec, terms, idf = _vectorizer_parts(vectorizer)
        blocks.append({"spec": spec.to_json(), "terms": terms, "idf": idf is not None})
        if idf is not None:
            arrays[f"idf{i}"] = np.asarray(idf, dtype=np.float64)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": [str(c) for c in model.classes_],
        "blocks": blocks,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    arrays["coef"] = np.asarray(model.coef_, dtype=np.float64)
    arrays["intercept"] = np.asarray(model.intercept_, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _steps(pipeline: Any) -> tuple[list[Any], Any]:
    """The vectorizers side by side and the classifier; a lone vectorizer is a union of one."""
    steps = [step for _name, step in getattr(pipeline, "steps", [])]
    if len(steps) != 2:
        raise UnsupportedPipelineError("expected Pipeline([features, LogisticRegression])")
    features, model = steps
    if getattr(features, "transformer_weights", None) is not None:
        raise UnsupportedPipelineError("FeatureUnion transformer_weights")
    if type(model).__name__ != "LogisticRegression":
        raise UnsupportedPipelineError(f"classifier {type(model).__name__}")
    if hasattr(features, "transformer_list"):
        return [vectorizer for _name, vectorizer in features.transformer_list], model
    return [features], model


def _vectorizer_parts(vectorizer: Any) -> tuple[BlockSpec, list[str], Any]:
    if type(vectorizer).__name__ != "TfidfVectorizer":
        raise UnsupportedPipelineError(f"feature step {type(vectorizer).__name__}")
    params = vectorizer.get_params()
    for name, wanted in _REQUIRED_PARAMS.items():
        if params[name] != wanted:
            raise UnsupportedPipelineError(f"TfidfVectorizer {name}={params[name]!r}")
    spec = BlockSpec(
        analyzer=params["analyzer"],
        ngram_range=(int(params["ngram_range"][0]), int(params["ngram_range"][1])),
        lowercase=bool(params["lowercase"]),
        token_pattern=str(params["token_pattern"]),
        sublinear_tf=bool(params["sublinear_tf"]),
        norm=params["norm"],
    )
    spec.check()
    terms = [""] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        terms[column] = term
    return spec, terms, vectorizer.idf_ if params["use_idf"] else None
