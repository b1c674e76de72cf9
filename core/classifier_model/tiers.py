"""Complexity tiers from the calibrated "needs the strong model" probability (pure functions).

The thresholds are chosen at training time (`tools.classifier_training.thresholds`, on the validation split) and
stored in the artifact's manifest: HARD means "the most valuable prompts to send to the strongest pair", COMPLEX
"worth a stronger pair when it is affordable", SIMPLE "the small model very likely does as well".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.vocabulary import ComplexityTier

# Width, in logits, of the logistic ramp that turns the hard thresholds into tier probabilities (see `tier_probabilities`).
TIER_SMOOTHING_LOGITS = 0.25


@dataclass(frozen=True)
class TierThresholds:
    """Probability thresholds: COMPLEX from `complex_from`, HARD from `hard_from` (complex_from <= hard_from)."""

    complex_from: float
    hard_from: float

    def tier(self, probability: float) -> ComplexityTier:
        """The tier of a calibrated probability."""
        if probability >= self.hard_from:
            return ComplexityTier.HARD
        if probability >= self.complex_from:
            return ComplexityTier.COMPLEX
        return ComplexityTier.SIMPLE


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def tier_probabilities(probability: float, thresholds: TierThresholds) -> dict[ComplexityTier, float]:
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
    return {
        ComplexityTier.SIMPLE: 1 - at_least_complex,
        ComplexityTier.COMPLEX: at_least_complex - hard,
        ComplexityTier.HARD: hard,
    }
