"""Counting the n-grams of a batch of texts that a fitted vocabulary knows, as scikit-learn's
vectorizers define them.

Two counters, both returning (row, column, count) arrays of the known terms:
- `TermCounter` makes each n-gram a string and looks it up in a dict; it works for any
  analyzer function, and is the reference the other is tested against;
- `CharWbCounter` does the same for `char_wb` n-grams without making strings: every character
  of the vocabulary's alphabet gets a small digit, an n-gram becomes the integer of its digits,
  and numpy finds and counts them for the whole batch at once. On the shipped model that is
  about ten times faster, and character n-grams are most of a prediction's cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

# An n-gram's code and its row number share one signed 64-bit sort key; at least 2**_MIN_ROW_BITS
# texts go into one sort.
_CODE_BITS = 63
_MIN_ROW_BITS = 8


def word_grams(text: str, findall: Callable[[str], list[str]], low: int, high: int) -> list[str]:
    """scikit-learn's word n-grams: the tokens, then space-joined runs of `low`..`high` tokens."""
    tokens = findall(text)
    if high == 1:
        return tokens
    grams = list(tokens) if low == 1 else []
    count = len(tokens)
    for n in range(max(low, 2), min(high, count) + 1):
        grams.extend([" ".join(tokens[i : i + n]) for i in range(count - n + 1)])
    return grams


def char_wb_grams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's `char_wb` n-grams: inside each space-padded word; once n reaches the
    padded word's length, the whole word counts once and longer sizes are skipped."""
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            if n >= size:
                grams.append(padded)
                break
            grams.extend([padded[i : i + n] for i in range(size - n + 1)])
    return grams


def _empty() -> tuple[Any, Any, Any]:
    import numpy as np

    nothing = np.zeros(0, dtype=np.intp)
    return nothing, nothing, np.zeros(0, dtype=np.float64)


class TermCounter:
    """Counts an analyzer's string n-grams per text and keeps those in the vocabulary."""

    def __init__(self, analyze: Callable[[str], list[str]], terms: Sequence[str]) -> None:
        self._analyze = analyze
        self._vocabulary = {term: column for column, term in enumerate(terms)}

    def count(self, texts: Sequence[str]) -> tuple[Any, Any, Any]:
        import numpy as np

        terms: list[str] = []
        counts: list[int] = []
        sizes: list[int] = []
        for text in texts:
            grams = Counter(self._analyze(text))
            terms.extend(grams)
            counts.extend(grams.values())
            sizes.append(len(grams))
        # A C-level loop over the distinct terms; -1 marks those the model never saw.
        found = map(self._vocabulary.get, terms, repeat(-1))
        columns = np.fromiter(found, dtype=np.intp, count=len(terms))
        rows = np.repeat(np.arange(len(texts)), sizes)
        known = columns >= 0
        return rows[known], columns[known], np.asarray(counts, dtype=np.float64)[known]


class CharWbCounter:
    """`char_wb` n-grams counted as packed integers. `build` says None when the vocabulary's
    alphabet is too large for that (use `TermCounter` then)."""

    def __init__(self, table: Any, bits: int, codes: Any, columns: Any, spec: _Spec) -> None:
        self._table = table  # code point -> digit (1.. for the alphabet, 0 for the rest)
        self._bits = bits
        self._codes = codes  # sorted codes of the vocabulary's terms ...
        self._columns = columns  # ... and their columns
        self._spec = spec
        # Row numbers ride in the low bits of each n-gram's sort key (see `_known`).
        self._chunk = 1 << (_CODE_BITS - bits * spec.high)

    @classmethod
    def build(
        cls, terms: Sequence[str], low: int, high: int, lowercase: bool
    ) -> CharWbCounter | None:
        import numpy as np

        alphabet = sorted(set("".join(terms)))
        bits = len(alphabet).bit_length()  # digits run from 1, so 0 never starts a code
        if not terms or len(alphabet) >= 1 << 16 or bits * high > _CODE_BITS - _MIN_ROW_BITS:
            return None
        digit = {char: i + 1 for i, char in enumerate(alphabet)}
        # The last slot is 0: every code point above the alphabet's is clamped onto it.
        table = np.zeros(ord(alphabet[-1]) + 2, dtype=np.uint16)
        table[[ord(char) for char in alphabet]] = np.arange(1, len(alphabet) + 1)
        codes = np.array([_pack(term, digit, bits) for term in terms], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        spec = _Spec(low, high, lowercase)
        return cls(table, bits, codes[order], order.astype(np.intp), spec)

    def count(self, texts: Sequence[str]) -> tuple[Any, Any, Any]:
        import numpy as np

        if len(texts) <= self._chunk:
            return self._count(texts, 0)
        step = self._chunk
        parts = [self._count(texts[i : i + step], i) for i in range(0, len(texts), step)]
        rows, columns, counts = zip(*parts, strict=True)
        return np.concatenate(rows), np.concatenate(columns), np.concatenate(counts)

    def _count(self, texts: Sequence[str], first_row: int) -> tuple[Any, Any, Any]:
        import numpy as np

        words, per_text = self._words(texts)
        if not words:
            return _empty()
        lengths = np.fromiter(map(len, words), dtype=np.intp, count=len(words)) + 2
        # Padded words side by side: " w1  w2 " tiles the string exactly, word after word.
        joined = " " + "  ".join(words) + " "
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        digits = self._table[np.minimum(points, len(self._table) - 1)].astype(np.int64)
        rows_of_words = np.repeat(np.arange(len(texts)), per_text)
        rows, codes = self._grams(digits, lengths, rows_of_words)
        rows, columns, counts = self._known(rows, codes)
        return rows + first_row, columns, counts

    def _words(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        words: list[str] = []
        per_text: list[int] = []
        lower = self._spec.lowercase
        for text in texts:
            split = (text.lower() if lower else text).split()
            words.extend(split)
            per_text.append(len(split))
        return words, per_text

    def _grams(self, digits: Any, lengths: Any, rows_of_words: Any) -> tuple[Any, Any]:
        """Rows and codes of every n-gram made of known characters."""
        import numpy as np

        ends = np.cumsum(lengths)
        end_of = np.repeat(ends, lengths)
        length_of = np.repeat(lengths, lengths)
        starts_word = np.zeros(len(digits), dtype=bool)
        starts_word[ends - lengths] = True
        row_of = np.repeat(rows_of_words, lengths)
        position = np.arange(len(digits))
        code, unknown = digits.copy(), digits == 0
        rows, codes = [], []
        for n in range(1, self._spec.high + 1):
            if n > 1:  # extend every (n-1)-gram by the character after it
                code = (code[:-1] << self._bits) | digits[n - 1 :]
                unknown = unknown[:-1] | (digits[n - 1 :] == 0)
            size = len(code)
            if n >= self._spec.low:
                take = position[:size] + n <= end_of[:size]
            else:  # a padded word shorter than `low` counts once, whole
                take = starts_word[:size] & (length_of[:size] == n)
            take &= ~unknown
            rows.append(row_of[:size][take])
            codes.append(code[take])
        return np.concatenate(rows), np.concatenate(codes)

    def _known(self, rows: Any, codes: Any) -> tuple[Any, Any, Any]:
        import numpy as np

        # One sort gives the counts per (code, row) and puts the codes in order, which makes
        # the vocabulary search walk forward instead of jumping around the table.
        row_bits = _CODE_BITS - self._bits * self._spec.high
        keys, counts = np.unique((codes << row_bits) | rows, return_counts=True)
        codes = keys >> row_bits
        slot = np.searchsorted(self._codes, codes)
        np.minimum(slot, len(self._codes) - 1, out=slot)
        known = self._codes[slot] == codes
        rows = keys[known] & ((1 << row_bits) - 1)
        return rows, self._columns[slot[known]], counts[known].astype(np.float64)


@dataclass(frozen=True)
class _Spec:
    low: int
    high: int
    lowercase: bool


def _pack(term: str, digit: dict[str, int], bits: int) -> int:
    code = 0
    for char in term:
        code = (code << bits) | digit[char]
    return code
