"""The compact model: the same probabilities as the scikit-learn pipeline, without it."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from classifier import compact
from classifier.compact import UnsupportedPipelineError
from classifier.export import export
from classifier.grams import CharWbCounter, TermCounter, char_wb_grams, word_grams
from classifier.train import DEFAULT_DATA, build_pipeline, load_dataset

ODD_TEXTS = [
    "",
    "   \t\n ",
    "a",
    "I",
    "x y z",
    "WINNER!!! CALL NOW",
    "tab\tseparated\nand  double  spaced   words",
    "Ünïcödé straße façade naïve",
    "emoji 😘 and 👀 and 🦄 unknown",
    "urls http://win-a-prize.biz/claim?id=42&x=y",
    "£100 €50 $20 #hash @user",
    "\u00a0non\u00a0breaking\u2003spaces",
    "supercalifragilisticexpialidocious " * 30,
]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    data = load_dataset(DEFAULT_DATA)
    return data.texts, data.labels


@pytest.fixture(scope="module")
def fitted(corpus: tuple[list[str], list[str]]) -> Pipeline:
    return build_pipeline(seed=42).fit(*corpus)


def assert_same_probabilities(pipeline: Pipeline, texts: list[str]) -> None:
    model = compact.load(export(pipeline))
    assert model.classes_ == [str(c) for c in pipeline.classes_]
    expected = pipeline.predict_proba(texts)
    served = model.predict_proba(texts)
    assert served.shape == expected.shape
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)


def test_the_trainers_pipeline_is_reproduced(fitted, corpus) -> None:
    assert_same_probabilities(fitted, corpus[0] + ODD_TEXTS)


def test_one_text_at_a_time_gives_the_batchs_answers(fitted) -> None:
    model = compact.load(export(fitted))
    together = model.predict_proba(ODD_TEXTS)
    alone = np.vstack([model.predict_proba([text]) for text in ODD_TEXTS])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-12)


def test_more_than_two_classes_use_the_softmax(corpus) -> None:
    texts, labels = corpus
    # A third class out of the ham messages that mention time, so that it is learnable.
    labels = [
        "time" if y == "ham" and "tomorrow" in x.lower() else y
        for x, y in zip(texts, labels, strict=True)
    ]
    pipeline = build_pipeline(seed=1).fit(texts, labels)
    assert len(pipeline.classes_) == 3
    assert_same_probabilities(pipeline, texts[:200] + ODD_TEXTS)


@pytest.mark.parametrize(
    "vectorizer",
    [
        TfidfVectorizer(),
        TfidfVectorizer(lowercase=False, ngram_range=(2, 3), norm=None, use_idf=False),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(4, 6), lowercase=False),
    ],
    ids=["word-defaults", "word-bigrams-raw", "char-1-3", "char-4-6-cased"],
)
def test_other_vectorizer_settings_are_reproduced(corpus, vectorizer) -> None:
    texts, labels = corpus
    union = FeatureUnion([("only", vectorizer)])
    pipeline = Pipeline([("features", union), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(texts, labels)
    assert_same_probabilities(pipeline, texts[:150] + ODD_TEXTS)


@pytest.mark.parametrize(
    "vectorizer",
    [
        TfidfVectorizer(stop_words="english"),
        TfidfVectorizer(analyzer="char"),
        TfidfVectorizer(strip_accents="unicode"),
        TfidfVectorizer(binary=True),
    ],
    ids=["stop-words", "char", "strip-accents", "binary"],
)
def test_settings_it_cannot_reproduce_are_refused(corpus, vectorizer) -> None:
    union = FeatureUnion([("only", vectorizer)])
    pipeline = Pipeline([("features", union), ("clf", LogisticRegression())]).fit(*corpus)
    with pytest.raises(UnsupportedPipelineError):
        export(pipeline)


def test_grams_are_scikit_learns(corpus) -> None:
    texts = corpus[0][:100] + ODD_TEXTS
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    words = TfidfVectorizer(ngram_range=(1, 3)).build_analyzer()
    findall = TfidfVectorizer().build_tokenizer()
    for text in texts:
        assert char_wb_grams(text.lower(), 2, 5) == chars(text)
        assert word_grams(text.lower(), findall, 1, 3) == words(text)


def random_texts(rng: random.Random, alphabet: str, count: int) -> list[str]:
    def word() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))

    return [" ".join(word() for _ in range(rng.randint(0, 12))) for _ in range(count)]


def sorted_triples(counted) -> list[tuple[int, int, float]]:
    rows, columns, counts = counted
    return sorted(zip(rows.tolist(), columns.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("ngram_range", [(2, 5), (1, 3), (4, 6), (5, 5)])
@pytest.mark.parametrize("lowercase", [True, False])
def test_packed_char_grams_count_like_strings(ngram_range, lowercase) -> None:
    rng = random.Random(f"{ngram_range}{lowercase}")
    low, high = ngram_range
    # The vocabulary knows some of the alphabet's characters; texts also use others.
    seen = random_texts(rng, "abcdeABCDE-é😘", 40)
    terms = sorted(
        {g for t in seen for g in char_wb_grams(t.lower() if lowercase else t, low, high)}
    )
    packed = CharWbCounter.build(terms, low, high, lowercase)
    assert packed is not None

    def analyze(text: str) -> list[str]:
        return char_wb_grams(text.lower() if lowercase else text, low, high)

    strings = TermCounter(analyze, terms)
    texts = [*random_texts(rng, "abcdefgABCDEFG-éü😘🦄", 60), "", "  "]
    assert sorted_triples(packed.count(texts)) == sorted_triples(strings.count(texts))


def test_a_batch_larger_than_one_sort_is_counted_in_parts() -> None:
    rng = random.Random(7)
    terms = sorted({g for t in random_texts(rng, "abcdef", 30) for g in char_wb_grams(t, 2, 4)})
    packed = CharWbCounter.build(terms, 2, 4, True)
    assert packed is not None
    texts = random_texts(rng, "abcdefg", 50)
    whole = sorted_triples(packed.count(texts))
    packed._chunk = 7  # as if row numbers had only three bits
    assert sorted_triples(packed.count(texts)) == whole


def test_an_alphabet_too_large_to_pack_falls_back_to_strings() -> None:
    alphabet = [chr(0x4E00 + i) for i in range(5000)]  # 13 bits a character; 5 x 13 > 55
    assert CharWbCounter.build(alphabet, 1, 5, True) is None


def test_a_compact_model_holds_no_code(fitted) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"format": compact.FORMAT}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        compact.load(buffer.getvalue())


def test_a_foreign_archive_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="not a"):
        compact.load(buffer.getvalue())


def test_a_long_batch_is_worked_in_runs_with_the_same_answers(fitted, corpus, monkeypatch) -> None:
    model = compact.load(export(fitted))
    texts = corpus[0][:60] + ODD_TEXTS
    together = model.predict_proba(texts)
    monkeypatch.setattr(compact, "RUN_CHARS", 300)  # about three texts a run
    assert len(list(compact._runs(texts))) > 20
    np.testing.assert_allclose(model.predict_proba(texts), together, rtol=0, atol=1e-12)
