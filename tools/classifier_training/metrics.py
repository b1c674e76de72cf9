"""Cost-quality metrics of routing between a weak and a strong model (pure functions, numpy only).

Definitions follow RouteLLM (Ong et al., "RouteLLM: Learning to Route LLMs with Preference Data", arXiv 2406.18665,
section 5.1): a router sends a prompt to the strong model when its score is above a threshold; sweeping the
threshold traces quality against the share of calls sent to the strong model. PGR (performance gap recovered) at a
share is (quality - weak quality) / (strong quality - weak quality); APGR is the area under PGR over the share from
0 to 1; CPT(x) is the smallest share of strong calls whose PGR reaches x.

Here the curve is exact rather than sampled at a few thresholds: prompts are sent to the strong model in order of
decreasing score, one at a time, and prompts with equal scores are treated as one block sent in random order, whose
expected quality is linear across the block (so the random router, all scores equal, gives the straight line from
(0, weak) to (1, strong): APGR 0.5 and CPT(50%) 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RoutingCurve:
    """Quality against the share of calls routed to the strong model.

    Attributes:
        strong_share: Shares of calls to the strong model, increasing from 0 to 1, shape (k,).
        quality: Mean correctness at each share, shape (k,).
        weak_quality: Quality with every call on the weak model.
        strong_quality: Quality with every call on the strong model.
    """

    strong_share: np.ndarray
    quality: np.ndarray
    weak_quality: float
    strong_quality: float

    @property
    def pgr(self) -> np.ndarray:
        """Performance gap recovered at each point, shape (k,)."""
        return (self.quality - self.weak_quality) / (self.strong_quality - self.weak_quality)


def routing_curve(scores: np.ndarray, weak_correct: np.ndarray, strong_correct: np.ndarray) -> RoutingCurve:
    """The routing curve of `scores` (higher: send to the strong model) on prompts with known correctness.

    Args:
        scores: Router score per prompt, shape (n,).
        weak_correct: Whether the weak model was right, shape (n,), bool or 0/1.
        strong_correct: Whether the strong model was right, shape (n,).

    Raises:
        ValueError: empty input, mismatched shapes, or both models equally good (PGR undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak_correct, dtype=np.float64)
    strong = np.asarray(strong_correct, dtype=np.float64)
    if scores.ndim != 1 or scores.shape != weak.shape or scores.shape != strong.shape or scores.size == 0:
        raise ValueError(
            f"scores, weak_correct, strong_correct must be equal non-empty 1-D; got "
            f"{scores.shape}, {weak.shape}, {strong.shape}"
        )
    n = scores.size
    weak_quality, strong_quality = weak.mean(), strong.mean()
    if strong_quality == weak_quality:
        raise ValueError("the weak and strong models are equally accurate here: PGR is undefined")
    order = np.argsort(-scores, kind="stable")
    gain = (strong - weak)[order]
    sorted_scores = scores[order]
    # Points at the end of each block of equal scores: quality is linear inside a block.
    block_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True)) + 1
    cumulative_gain = np.concatenate(([0.0], np.cumsum(gain)[block_ends - 1]))
    share = np.concatenate(([0.0], block_ends / n))
    return RoutingCurve(share, weak_quality + cumulative_gain / n, float(weak_quality), float(strong_quality))


def apgr(curve: RoutingCurve) -> float:
    """Average performance gap recovered: the area under PGR over the strong-call share in [0, 1]."""
    pgr = curve.pgr
    return float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(curve.strong_share)))


def cpt(curve: RoutingCurve, target_pgr: float) -> float:
    """Call-performance threshold: the smallest strong-call share at which PGR reaches `target_pgr` (for example 0.5),
    interpolated linearly between points; 1.0 if it is never reached."""
    pgr = curve.pgr
    reached = np.flatnonzero(pgr >= target_pgr)
    if reached.size == 0:
        return 1.0
    i = int(reached[0])
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = curve.strong_share[i - 1], curve.strong_share[i], pgr[i - 1], pgr[i]
    return float(x0 + (target_pgr - y0) * (x1 - x0) / (y1 - y0))


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of probabilities against 0/1 labels (Brier 1950); lower is better."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((probabilities - np.asarray(labels, dtype=np.float64)) ** 2))
