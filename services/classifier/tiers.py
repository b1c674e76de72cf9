"""Complexity tiers from the calibrated "needs the strong model" probability (pure functions).

Thresholds are chosen on the validation split (never the test split) from the routing curve of the calibrated
probability (`services.classifier.metrics`, RouteLLM's PGR): HARD is the top of the ranking that a router sending
those prompts to the strong model needs to recover `HARD_PGR` (50 %) of the weak-to-strong quality gap, that is the
prompts above the score at CPT(50 %); COMPLEX is the next slice, up to the score at CPT(`COMPLEX_PGR` = 80 %);
the rest is SIMPLE. So HARD means "the most valuable prompts to send to the strongest pair", COMPLEX "worth a
stronger pair when it is affordable", SIMPLE "the small model very likely does as well".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.classifier.metrics import cpt, routing_curve

SIMPLE, COMPLEX, HARD = "simple", "complex", "hard"
TIERS = (SIMPLE, COMPLEX, HARD)
HARD_PGR = 0.5
COMPLEX_PGR = 0.8
# Width, in logits, of the logistic ramp that turns the hard thresholds into tier probabilities (see `tier_probabilities`).
TIER_SMOOTHING_LOGITS = 0.25


@dataclass(frozen=True)
class TierThresholds:
    """Probability thresholds: COMPLEX from `complex_from`, HARD from `hard_from` (complex_from <= hard_from)."""

    complex_from: float
    hard_from: float

    def tier(self, probability: float) -> str:
        """The tier of a calibrated probability."""
        if probability >= self.hard_from:
            return HARD
        if probability >= self.complex_from:
            return COMPLEX
        return SIMPLE


def choose_thresholds(
    probabilities: np.ndarray, weak_correct: np.ndarray, strong_correct: np.ndarray
) -> TierThresholds:
    """Thresholds at the scores where routing by `probabilities` reaches CPT(HARD_PGR) and CPT(COMPLEX_PGR).

    Args:
        probabilities: Calibrated probabilities on the validation prompts, shape (n,).
        weak_correct: Weak-model correctness on them, shape (n,).
        strong_correct: Strong-model correctness on them, shape (n,).
    """
    curve = routing_curve(probabilities, weak_correct, strong_correct)
    ranked = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1]

    def score_at(share: float) -> float:
        # The lowest probability among the top `share` of prompts: routing everything at or above it to the strong
        # model spends about `share` of the calls.
        count = max(1, math.ceil(share * ranked.size))
        return float(ranked[min(count, ranked.size) - 1])

    hard_from = score_at(cpt(curve, HARD_PGR))
    complex_from = min(score_at(cpt(curve, COMPLEX_PGR)), hard_from)
    return TierThresholds(complex_from=complex_from, hard_from=hard_from)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def tier_probabilities(probability: float, thresholds: TierThresholds) -> dict[str, float]:
    """Probability of each tier, summing to 1.

    The tier itself is a hard cut of the calibrated probability; these soften the cut with a logistic ramp of width
    `TIER_SMOOTHING_LOGITS` around each threshold (in logit space), so that a query just above a threshold reads as
    nearly undecided between the two tiers rather than certain. P(at least COMPLEX) and P(HARD) are the two ramps;
    the tiers are their differences.
    """
    x = _logit(probability)
    at_least_complex = 1 / (1 + math.exp(-(x - _logit(thresholds.complex_from)) / TIER_SMOOTHING_LOGITS))
    hard = 1 / (1 + math.exp(-(x - _logit(thresholds.hard_from)) / TIER_SMOOTHING_LOGITS))
    hard = min(hard, at_least_complex)
    return {SIMPLE: 1 - at_least_complex, COMPLEX: at_least_complex - hard, HARD: hard}
