"""Users' own scikit-learn pipelines for the tests, fitted on the synthetic three-label corpus
and saved with skops, as a user would before `python -m classifier.publish`."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

import skops.io
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

DATA = Path(__file__).resolve().parent / "data" / "support_intents.csv"
# A preprocessor from the standard library (texts scraped from web pages carry entities): skops
# does not trust a function by default, so publishing it needs --trust.
UNTRUSTED_TYPE = "html.unescape"


def naive_bayes() -> Pipeline:
    return Pipeline([("counts", CountVectorizer(ngram_range=(1, 2))), ("nb", MultinomialNB())])


def hinge_sgd() -> Pipeline:
    # Hinge loss: decision_function only, no predict_proba.
    clf = SGDClassifier(loss="hinge", random_state=0)
    return Pipeline([("tfidf", TfidfVectorizer()), ("sgd", clf)])


def logistic() -> Pipeline:
    return Pipeline([("tfidf", TfidfVectorizer()), ("lr", LogisticRegression(max_iter=1000))])


def unescaping_nb() -> Pipeline:
    counts = CountVectorizer(preprocessor=html.unescape)
    return Pipeline([("counts", counts), ("nb", MultinomialNB())])


def fit_and_save(pipeline: Pipeline, directory: Path, name: str) -> tuple[Path, Path, Any]:
    """The fitted pipeline's .skops file, a held-out label,text CSV it never saw, and it."""
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = [(row["label"], row["text"]) for row in csv.DictReader(handle)]
    train, held_out = train_test_split(
        rows, test_size=0.3, random_state=0, stratify=[label for label, _ in rows]
    )
    pipeline.fit([text for _, text in train], [label for label, _ in train])
    model = directory / f"{name}.skops"
    skops.io.dump(pipeline, model)
    eval_csv = directory / f"{name}-eval.csv"
    with eval_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        writer.writerows(held_out)
    return model, eval_csv, pipeline
