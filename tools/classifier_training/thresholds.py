"""Where the tier thresholds fall: chosen on the validation split (never the test split) from the routing curve.

HARD is the top of the ranking that a router sending those prompts to the strong model needs to recover `HARD_PGR`
(50 %) of the weak-to-strong quality gap, that is the prompts above the score at CPT(50 %) (RouteLLM's PGR, see
`tools.classifier_training.metrics`); COMPLEX is the next slice, up to the score at CPT(`COMPLEX_PGR` = 80 %); the
rest is SIMPLE.
"""

from __future__ import annotations

import math

import numpy as np

from core.classifier_model.tiers import TierThresholds
from tools.classifier_training.metrics import cpt, routing_curve

HARD_PGR = 0.5
COMPLEX_PGR = 0.8


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
