"""Structure features, token rows and the training matrix agree with hand counts; batched rows equal single ones."""

import numpy as np
import pytest

from core.classifier_model.features import (
    DENSE_FEATURES,
    Featurizer,
    dense_raw,
    fit_dense_standardisation,
    rows_to_csr,
)

MMLU_LIKE = "Which gas is most abundant?\nA. Oxygen\nB. Nitrogen\nC. Argon\nD. Carbon dioxide\nAnswer:"


def _featurizer(vocab_size: int = 100, buckets: int = 64) -> Featurizer:
    n = len(DENSE_FEATURES)
    return Featurizer(vocab_size, buckets, np.zeros(n), np.ones(n))


def _feature(text: str, name: str, n_tokens: int = 10, numeric_share: float = 0.0) -> float:
    return dense_raw(text, n_tokens, numeric_share)[DENSE_FEATURES.index(name)]


def test_answer_choices_and_stem() -> None:
    assert _feature(MMLU_LIKE, "answer_choices") == 4
    assert _feature(MMLU_LIKE, "log_stem_chars") == pytest.approx(
        np.log1p(len("Which gas is most abundant?\n"))
    )
    assert _feature("Just a question?", "answer_choices") == 0


def test_number_features() -> None:
    text = "She sells 12 eggs at $2.50 each, 12 more at 3/4 price, a 10% discount."
    assert _feature(text, "log_numbers") == pytest.approx(np.log1p(5))  # 12, 2.50, 12, 3/4, 10
    assert _feature(text, "log_distinct_numbers") == pytest.approx(np.log1p(4))
    assert _feature(text, "log_max_number") == pytest.approx(np.log1p(12))
    assert _feature(text, "decimal_or_fraction_count") == 2
    assert _feature(text, "percent_count") == 1


def test_empty_text_has_finite_features() -> None:
    assert all(np.isfinite(dense_raw("", 0, 0.0)))


def _row(featurizer: Featurizer, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rows = featurizer.token_rows([ids])
    return rows.columns, rows.values


def test_token_rows_are_unique_sorted_and_unit_norm() -> None:
    featurizer = _featurizer()
    columns, values = _row(featurizer, [5, 7, 5, 7, 9])
    assert list(columns) == sorted(set(columns))
    assert np.all(columns < featurizer.dense_offset)
    assert set(columns[columns < 100]) == {5, 7, 9}  # unigrams
    assert len(columns[columns >= 100]) == 3  # bigrams (5,7) twice, (7,5), (7,9), hashed into their own block
    assert float(values @ values) == pytest.approx(1.0)
    empty_columns, empty_values = _row(featurizer, [])
    assert empty_columns.size == 0 and empty_values.size == 0


def test_batched_rows_equal_rows_built_alone() -> None:
    featurizer = _featurizer()
    id_rows = [[1, 2, 3, 2], [], [4], [9, 9, 8], []]  # empty rows in the middle and at the end
    batch = featurizer.token_rows(id_rows)
    assert batch.indptr.tolist()[0] == 0 and len(batch.indptr) == len(id_rows) + 1
    for row, ids in enumerate(id_rows):
        start, end = batch.indptr[row], batch.indptr[row + 1]
        columns, values = _row(featurizer, ids)
        np.testing.assert_array_equal(batch.columns[start:end], columns)
        np.testing.assert_array_equal(batch.values[start:end], values)  # bit for bit


def test_one_text_row_equals_its_batched_row() -> None:
    featurizer = _featurizer(vocab_size=8192, buckets=2**15)  # the shipped sizes: ids times vocab fill int64 bits
    rng = np.random.default_rng(7)
    id_rows = [[], [3], [5, 5, 5, 5]] + [rng.integers(0, 8192, rng.integers(1, 400)).tolist() for _ in range(40)]
    id_rows += [rng.integers(0, 12, 300).tolist()]  # few distinct tokens: high counts and repeated bigrams
    batch = featurizer.token_rows(id_rows)
    for row, ids in enumerate(id_rows):
        start, end = batch.indptr[row], batch.indptr[row + 1]
        columns, values = featurizer.token_row(ids)
        assert columns == batch.columns[start:end].tolist()
        np.testing.assert_array_equal(values, batch.values[start:end])  # bit for bit


def test_no_bigram_across_two_texts() -> None:
    featurizer = _featurizer()
    batch = featurizer.token_rows([[1], [2]])
    assert batch.columns.tolist() == [1, 2]  # unigrams only: 1 and 2 are not neighbours in one text


def test_uppercase_share_ascii_and_not() -> None:
    assert _feature("ABc d", "uppercase_share") == pytest.approx(2 / 4)
    assert _feature("ÀBç d 12", "uppercase_share") == pytest.approx(2 / 4)  # non-ASCII letters count too
    assert _feature("1234 !?", "uppercase_share") == 0.0


def test_csr_rows_match_the_serving_features() -> None:
    featurizer = _featurizer()
    ids = [[1, 2, 3], [4], []]
    dense = np.arange(3 * len(DENSE_FEATURES), dtype=float).reshape(3, -1)
    matrix = rows_to_csr(featurizer, featurizer.token_rows(ids), dense)
    assert matrix.shape == (3, featurizer.n_features)
    for row, token_ids in enumerate(ids):
        columns, values = _row(featurizer, token_ids)
        expected = np.zeros(featurizer.n_features)
        expected[columns] = values
        expected[featurizer.dense_offset :] = dense[row]
        np.testing.assert_allclose(matrix[row].toarray()[0], expected)


def test_standardisation_keeps_constant_columns_finite() -> None:
    mean, scale = fit_dense_standardisation(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(scale, [1.0, 1.0])
