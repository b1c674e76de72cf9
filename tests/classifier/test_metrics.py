"""APGR, CPT and Brier on inputs small enough to check by hand."""

import numpy as np
import pytest

from tools.classifier_training.metrics import apgr, brier_score, cpt, routing_curve

# Four prompts: weak right on 0 and 3, strong right on 0, 1, 2. Weak quality 0.5, strong 0.75, gap 0.25.
# Gains of sending each to the strong model: 0, +1, +1, -1.
WEAK = np.array([1, 0, 0, 1])
STRONG = np.array([1, 1, 1, 0])


def test_perfect_order_recovers_more_than_the_gap() -> None:
    # Order 1, 2, 0, 3 -> quality 0.5, 0.75, 1.0, 1.0, 0.75 -> PGR 0, 1, 2, 2, 1.
    curve = routing_curve(np.array([0.5, 0.9, 0.8, 0.1]), WEAK, STRONG)
    np.testing.assert_allclose(curve.pgr, [0, 1, 2, 2, 1])
    # Trapezoids of width 0.25: (0+1)/2 + (1+2)/2 + (2+2)/2 + (2+1)/2 = 5.5 -> 1.375.
    assert apgr(curve) == pytest.approx(1.375)
    assert cpt(curve, 0.5) == pytest.approx(0.125)  # halfway up the first step


def test_reverse_order_is_worse_than_random() -> None:
    # Order 3, 0, 2, 1 -> gains -1, 0, +1, +1 -> PGR 0, -1, -1, 0, 1.
    curve = routing_curve(np.array([0.8, 0.1, 0.5, 0.9]), WEAK, STRONG)
    assert apgr(curve) == pytest.approx(-0.375)
    assert cpt(curve, 0.5) == pytest.approx(0.875)


def test_equal_scores_give_the_random_router_line() -> None:
    curve = routing_curve(np.zeros(4), WEAK, STRONG)
    np.testing.assert_allclose(curve.strong_share, [0, 1])
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == pytest.approx(0.5)


def test_ties_are_one_block_with_linear_quality() -> None:
    # Prompt 1 first (gain +1), then prompts 0, 2, 3 tied (gains 0, +1, -1: net 0 over the block).
    curve = routing_curve(np.array([0.2, 0.9, 0.2, 0.2]), WEAK, STRONG)
    np.testing.assert_allclose(curve.strong_share, [0, 0.25, 1])
    np.testing.assert_allclose(curve.pgr, [0, 1, 1])
    assert apgr(curve) == pytest.approx(0.25 * 0.5 + 0.75 * 1)


def test_target_never_reached_gives_full_share() -> None:
    curve = routing_curve(np.zeros(4), WEAK, STRONG)
    assert cpt(curve, 1.5) == 1.0


def test_equal_models_have_no_gap() -> None:
    with pytest.raises(ValueError, match="PGR is undefined"):
        routing_curve(np.arange(2.0), np.array([1, 0]), np.array([0, 1]))


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        routing_curve(np.arange(3.0), WEAK, STRONG)


def test_brier_score() -> None:
    assert brier_score(np.array([1.0, 0.0, 0.5]), np.array([1, 1, 0])) == pytest.approx((0 + 1 + 0.25) / 3)
