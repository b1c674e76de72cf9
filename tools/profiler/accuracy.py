"""Accuracy of one pair on the eval set, per complexity tier and per task intent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from core.vocabulary import ComplexityTier, TaskIntent
from tools.profiler.eval_set import EvalItem
from tools.profiler.scoring import Score


@dataclass(frozen=True)
class SliceAccuracy:
    """Correct answers out of items in one slice (a tier or an intent)."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """correct / total, in [0, 1]."""
        return self.correct / self.total


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy per tier and per intent (only slices with items) and overall."""

    by_tier: dict[ComplexityTier, SliceAccuracy]
    by_intent: dict[TaskIntent, SliceAccuracy]
    overall: SliceAccuracy

    def missing_tiers(self) -> list[ComplexityTier]:
        """Tiers with no item: their accuracy cannot be measured."""
        return [tier for tier in ComplexityTier.known() if tier not in self.by_tier]


def _tally(keys_and_scores: list[tuple[object, bool]]) -> dict:
    counts: dict[object, list[int]] = defaultdict(lambda: [0, 0])
    for key, correct in keys_and_scores:
        counts[key][0] += int(correct)
        counts[key][1] += 1
    return {key: SliceAccuracy(correct, total) for key, (correct, total) in counts.items()}


def accuracy_report(items: Sequence[EvalItem], scores: Sequence[Score]) -> AccuracyReport:
    """Aggregates one score per item (same order).

    Raises:
        ValueError: the lengths differ, or there are no items.
    """
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} items but {len(scores)} scores")
    if not items:
        raise ValueError("no scored items")
    by_tier = _tally([(item.tier, score.correct) for item, score in zip(items, scores, strict=True)])
    by_intent = _tally([(item.intent, score.correct) for item, score in zip(items, scores, strict=True)])
    overall = SliceAccuracy(sum(score.correct for score in scores), len(scores))
    return AccuracyReport(by_tier=by_tier, by_intent=by_intent, overall=overall)
