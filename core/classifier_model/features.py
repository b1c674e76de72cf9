"""Features of one text for the complexity and intent heads: pure functions, numpy only.

A text becomes one sparse row of `Featurizer.n_features` columns:
- columns [0, vocab_size): reference-tokenizer token unigrams,
- the next `bigram_buckets` columns: token bigrams hashed into buckets (multiplicative hashing of the id pair),
  both blocks valued log(1 + count) and L2-normalised together (sublinear TF, as in TF-IDF practice);
- the last `len(DENSE_FEATURES)` columns: hand-made structure features (length, numbers, answer-choice layout,
  code characters...), standardised by the training mean and standard deviation.
The same code builds training matrices (`rows_to_csr`) and scores queries at serving time, so the two never drift.
Token blocks are built for a batch of texts at once (`Featurizer.token_rows`: a few numpy calls per batch, not per
text); each row's numbers depend only on its own tokens, never on the other rows of the batch.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # scipy is for training only: serving (the service, an embedded router) does not import it
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
# On ASCII, str.isalpha is exactly A-Z / a-z and str.isupper exactly A-Z: the bytes to delete before counting.
_NOT_ASCII_LETTER = bytes(b for b in range(128) if not chr(b).isalpha())
_NOT_ASCII_UPPER = bytes(b for b in range(128) if not chr(b).isupper())


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
    letters, uppercase = _letters_and_uppercase(text)
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
        uppercase / letters if letters else 0.0,
    ]


def _letters_and_uppercase(text: str) -> tuple[int, int]:
    """Counts of `str.isalpha` and `str.isupper` characters of `text`."""
    if text.isascii():  # the usual case: byte deletion in C, about 5x faster than a per-character map
        data = text.encode("ascii")
        return len(data.translate(None, _NOT_ASCII_LETTER)), len(data.translate(None, _NOT_ASCII_UPPER))
    return sum(map(str.isalpha, text)), sum(map(str.isupper, text))


@dataclass(frozen=True)
class TokenRows:
    """Token blocks of a batch of texts in CSR layout: row i is `columns[indptr[i]:indptr[i + 1]]` (sorted, unique,
    below `Featurizer.dense_offset`) with `values` (log(1 + count), L2 norm 1 in every row that has a token).

    Attributes:
        indptr: Row boundaries, int64, shape (rows + 1,).
        columns: Column of each entry, int64, shape (entries,).
        values: Value of each entry, float64, shape (entries,).
    """

    indptr: np.ndarray
    columns: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Featurizer:
    """Maps the token ids and structure features of texts to sparse feature rows.

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

    def bigram_column(self, first: Any, second: Any) -> Any:
        """The hashed bigram column of token ids (`first`, `second`): ints, or int64 arrays element-wise."""
        return (first * self.vocab_size + second) * _BIGRAM_MULTIPLIER % self.bigram_buckets + self.vocab_size

    def token_rows(self, id_rows: Sequence[Sequence[int]]) -> TokenRows:
        """The unigram and bigram blocks of several texts, one row per item of `id_rows` (the token ids of one text)."""
        n_rows = len(id_rows)
        lengths = np.fromiter(map(len, id_rows), np.int64, n_rows)
        unigrams = np.fromiter(itertools.chain.from_iterable(id_rows), np.int64, int(lengths.sum()))
        token_row = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        pair = token_row[1:] == token_row[:-1]  # bigrams only between neighbours of the same text
        bigrams = self.bigram_column(unigrams[:-1][pair], unigrams[1:][pair])
        width = self.dense_offset
        keys, counts = np.unique(
            np.concatenate((token_row * width + unigrams, token_row[:-1][pair] * width + bigrams)),
            return_counts=True,
        )
        rows, columns = np.divmod(keys, width)
        values = np.log1p(counts)
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=n_rows))
        values /= norms[rows]
        indptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        return TokenRows(indptr, columns, values)

    def token_row(self, ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """The unigram and bigram block of one text: its sorted columns and their values (float64), bit for bit its row
        of `token_rows`, in a few Python steps instead of that method's dozen numpy calls (the router classifies one
        text per request, where each numpy call costs microseconds)."""
        counts = Counter(ids)
        counts.update(itertools.starmap(self.bigram_column, itertools.pairwise(ids)))
        columns = sorted(counts)
        values = np.log1p(np.array([counts[column] for column in columns], dtype=np.float64))
        squares = 0.0
        for value in values.tolist():  # the running sum of np.bincount in `token_rows`, in the same order
            squares += value * value
        if columns:
            values /= math.sqrt(squares)
        return columns, values


def rows_to_csr(featurizer: Featurizer, token_rows: TokenRows, dense_rows: np.ndarray) -> sp.csr_matrix:
    """The (rows, n_features) training matrix: token blocks (`Featurizer.token_rows`) beside standardised dense rows of
    shape (rows, len(DENSE_FEATURES))."""
    import scipy.sparse as sp

    tokens = sp.csr_matrix(
        (token_rows.values, token_rows.columns, token_rows.indptr),
        shape=(len(token_rows.indptr) - 1, featurizer.dense_offset),
    )
    return sp.hstack((tokens, sp.csr_matrix(dense_rows)), format="csr")


def fit_dense_standardisation(raw_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per dense column of the training rows (scale 1 where a column is constant)."""
    mean = raw_rows.mean(axis=0)
    scale = raw_rows.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)
