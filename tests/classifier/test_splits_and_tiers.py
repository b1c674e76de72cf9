"""Deterministic stratified splits and the tier mapping."""

import random
from collections import Counter

import numpy as np
import pytest

from core.classifier_model.tiers import TierThresholds, tier_probabilities
from core.vocabulary import ComplexityTier
from tools.classifier_training.splits import stratified_split
from tools.classifier_training.thresholds import choose_thresholds

SIMPLE, COMPLEX, HARD = ComplexityTier.SIMPLE, ComplexityTier.COMPLEX, ComplexityTier.HARD
ITEMS = [(f"text {i}", i % 3 == 0) for i in range(300)]


def _split(items: list[tuple[str, bool]], seed: int = 7) -> dict[str, list[tuple[str, bool]]]:
    return stratified_split(
        items,
        key=lambda item: item[0],
        stratum=lambda item: item[1],
        validation_fraction=0.15,
        test_fraction=0.25,
        seed=seed,
    )


def test_split_is_a_partition_with_stratified_sizes() -> None:
    splits = _split(ITEMS)
    keys = [item[0] for part in splits.values() for item in part]
    assert sorted(keys) == sorted(item[0] for item in ITEMS)
    assert Counter(label for _, label in splits["test"]) == {True: 25, False: 50}
    assert Counter(label for _, label in splits["validation"]) == {True: 15, False: 30}


def test_split_does_not_depend_on_input_order_but_on_seed() -> None:
    shuffled = ITEMS[:]
    random.Random(1).shuffle(shuffled)
    assert _split(shuffled) == _split(ITEMS)
    assert _split(ITEMS, seed=8)["test"] != _split(ITEMS)["test"]


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(ValueError):
        stratified_split(ITEMS, key=str, stratum=str, validation_fraction=0.5, test_fraction=0.5, seed=0)


def test_tier_cuts_and_probabilities() -> None:
    thresholds = TierThresholds(complex_from=0.2, hard_from=0.4)
    assert [thresholds.tier(p) for p in (0.1, 0.2, 0.39, 0.4, 0.9)] == [SIMPLE, COMPLEX, COMPLEX, HARD, HARD]
    previous_hard = -1.0
    for p in np.linspace(0.01, 0.99, 50):
        probabilities = tier_probabilities(float(p), thresholds)
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert all(0 <= value <= 1 for value in probabilities.values())
        assert probabilities[HARD] >= previous_hard  # monotone in p
        previous_hard = probabilities[HARD]
    assert max(tier_probabilities(0.05, thresholds).items(), key=lambda kv: kv[1])[0] == SIMPLE
    assert max(tier_probabilities(0.9, thresholds).items(), key=lambda kv: kv[1])[0] == HARD


def test_thresholds_from_a_validation_curve() -> None:
    # 10 prompts: the 3 highest-scored are the only ones the strong model wins -> CPT(50%) within the top 3.
    scores = np.linspace(1.0, 0.1, 10)
    weak = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 1])
    strong = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 1])
    thresholds = choose_thresholds(scores, weak, strong)
    assert thresholds.complex_from <= thresholds.hard_from
    assert thresholds.hard_from >= scores[2]  # HARD covers at most the three winning prompts
    assert thresholds.tier(float(scores[0])) == HARD
    assert thresholds.tier(float(scores[-1])) == SIMPLE
