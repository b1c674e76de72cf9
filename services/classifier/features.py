"""Features of one text for the complexity and intent heads: pure functions, numpy only.

A text becomes one sparse row of `Featurizer.n_features` columns:
- columns [0, vocab_size): reference-tokenizer token unigrams,
- the next `bigram_buckets` columns: token bigrams hashed into buckets (multiplicative hashing of the id pair),
  both blocks valued log(1 + count) and L2-normalised together (sublinear TF, as in TF-IDF practice);
- the last `len(DENSE_FEATURES)` columns: hand-made structure features (length, numbers, answer-choice layout,
  code characters...), standardised by the training mean and standard deviation.
The same code builds training matrices (`rows_to_csr`) and scores queries at serving time, so the two never drift.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DENSE_FEATURES = (
    "log_chars",
    "log_tokens",
    "numeric_token_share",
    "log_numbers",
    "log_distinct_numbers",
    "log_max_number",
    "decimal_or_fraction_count",
    "percent_count",
    "answer_choices",
    "log_choice_chars",
    "log_stem_chars",
    "log_sentences",
    "log_newlines",
    "question_marks",
    "code_char_share",
    "uppercase_share",
)

_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
_DECIMAL_OR_FRACTION = re.compile(r"\d[.,/]\d")
_CHOICE_LINE = re.compile(r"^[A-J][.)] ?(.*)$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_CODE_CHARS = frozenset("{}()[];=<>_#`\\|")
_BIGRAM_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant


def dense_raw(text: str, n_tokens: int, numeric_share: float) -> list[float]:
    """The unstandardised structure features of `text`, in `DENSE_FEATURES` order."""
    numbers = _NUMBER.findall(text)
    choices = _CHOICE_LINE.findall(text)
    first_choice = _CHOICE_LINE.search(text)
    stem = text[: first_choice.start()] if first_choice else text
    n_chars = len(text)
    max_number = 0.0
    for number in numbers:
        digits = number.replace(",", "").split("/")[0]
        try:
            max_number = max(max_number, float(digits))
        except ValueError:  # "1.2.3": not one number
            continue
    letters = sum(map(str.isalpha, text))  # map over str methods: C-speed counting
    return [
        math.log1p(n_chars),
        math.log1p(n_tokens),
        numeric_share,
        math.log1p(len(numbers)),
        math.log1p(len(set(numbers))),
        math.log1p(min(max_number, 1e12)),
        float(len(_DECIMAL_OR_FRACTION.findall(text))),
        float(text.count("%")),
        float(len(choices)),
        math.log1p(sum(len(choice) for choice in choices) / len(choices)) if choices else 0.0,
        math.log1p(len(stem)),
        math.log1p(len(_SENTENCE_END.findall(text))),
        math.log1p(text.count("\n")),
        float(text.count("?")),
        sum(text.count(char) for char in _CODE_CHARS) / n_chars if n_chars else 0.0,
        sum(map(str.isupper, text)) / letters if letters else 0.0,
    ]


@dataclass(frozen=True)
class Featurizer:
    """Maps token ids and a text to one sparse feature row.

    Attributes:
        vocab_size: Reference-tokenizer vocabulary size (unigram block width).
        bigram_buckets: Width of the hashed bigram block (a power of two).
        dense_mean: Training mean of each dense feature, shape (len(DENSE_FEATURES),).
        dense_scale: Training standard deviation of each dense feature (1 where it was 0), same shape.
    """

    vocab_size: int
    bigram_buckets: int
    dense_mean: np.ndarray
    dense_scale: np.ndarray

    @property
    def dense_offset(self) -> int:
        return self.vocab_size + self.bigram_buckets

    @property
    def n_features(self) -> int:
        return self.dense_offset + len(DENSE_FEATURES)

    def token_features(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Column indices (int64, sorted, unique) and values (float64) of the unigram and bigram blocks."""
        if not ids:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        unigrams = np.asarray(ids, dtype=np.int64)
        bigrams = (
            (unigrams[:-1] * self.vocab_size + unigrams[1:]) * _BIGRAM_MULTIPLIER
        ) % self.bigram_buckets + self.vocab_size
        columns, counts = np.unique(np.concatenate((unigrams, bigrams)), return_counts=True)
        values = np.log1p(counts)
        return columns, values / np.sqrt(values @ values)

    def dense_features(self, text: str, n_tokens: int, numeric_share: float) -> np.ndarray:
        """The standardised dense block, shape (len(DENSE_FEATURES),)."""
        return (np.asarray(dense_raw(text, n_tokens, numeric_share)) - self.dense_mean) / self.dense_scale


def rows_to_csr(featurizer: Featurizer, token_rows: list[list[int]], dense_rows: np.ndarray) -> sp.csr_matrix:
    """A (len(token_rows), n_features) CSR matrix from token ids and standardised dense rows (for training)."""
    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    dense_columns = np.arange(featurizer.dense_offset, featurizer.n_features)
    for ids, dense in zip(token_rows, dense_rows, strict=True):
        columns, token_values = featurizer.token_features(ids)
        indices.extend((columns, dense_columns))
        values.extend((token_values, dense))
        indptr.append(indptr[-1] + len(columns) + len(dense_columns))
    return sp.csr_matrix(
        (np.concatenate(values), np.concatenate(indices), np.asarray(indptr)),
        shape=(len(token_rows), featurizer.n_features),
    )


def fit_dense_standardisation(raw_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per dense column of the training rows (scale 1 where a column is constant)."""
    mean = raw_rows.mean(axis=0)
    scale = raw_rows.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)
