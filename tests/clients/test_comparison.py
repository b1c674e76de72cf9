"""The comparison's figures from graded answers (pure): accuracy with its Wilson interval, cost per 1M tokens,
latency percentiles, shares, the paired difference, and the most accurate pair."""

from __future__ import annotations

import pytest

from core.profiles import GradedSlice, ProfileDocument, wilson_interval
from tests.router.helpers import document, pair_dict
from tools.mesh.comparison import Answer, arm_figures, cost_usd, most_accurate, paired_difference, task_of


def answer(item: int, correct: bool, pair: str = "p/none", cost: float = 1e-6, latency_ms: float = 100.0,
           prompt_tokens: int = 10, completion_tokens: int = 5) -> Answer:
    return Answer("routed", f"heldout-gsm8k-{item}" if item % 2 else f"heldout-clinc150-{item}", "simple", "math",
                  pair, correct, None, "", "text", prompt_tokens, completion_tokens, cost, latency_ms)


def test_arm_figures() -> None:
    answers = [answer(i, correct=i < 6, pair="a/none" if i < 7 else "b/w8a8", latency_ms=10.0 * (i + 1))
               for i in range(10)]
    figures = arm_figures(answers, wall_s=2.0)
    assert figures["accuracy"] == 0.6 and figures["n"] == 10
    assert figures["ci95"] == list(wilson_interval(6, 10))
    assert figures["cost_per_1m_usd"] == pytest.approx(10e-6 / 150 * 1e6)  # USD over prompt + output tokens
    assert figures["p50_ms"] == 55.0 and figures["p99_ms"] == 100.0
    assert figures["output_tokens_per_s"] == 25.0
    assert figures["share_by_pair"] == {"a/none": 0.7, "b/w8a8": 0.3}
    assert figures["accuracy_by_task"] == {"clinc150": 0.6, "gsm8k": 0.6}


def test_paired_difference_is_over_the_same_items() -> None:
    best = [answer(i, correct=True) for i in range(10)]
    routed = [answer(i, correct=i != 3) for i in reversed(range(10))]  # order does not matter
    result = paired_difference(routed, best)
    assert result["difference"] == pytest.approx(-0.1)
    low, high = result["ci95"]
    assert low < -0.1 < high


def test_task_of_reads_the_item_id() -> None:
    assert task_of("heldout-banking77-12") == "banking77"


def test_cost_prices_input_and_output_separately() -> None:
    pair = document(pair_dict("m", "h:1", price_per_hour_usd=0.5, throughput_tokens_per_s=100.0,
                              prefill_tokens_per_s=1000.0,
                              cost_per_1m_input_tokens_usd=0.5 / (1000.0 * 3600) * 1e6)).pairs[0]
    assert cost_usd(pair, 1000, 100) == pytest.approx((1000 * 0.5 / 3.6e6) + (100 * 0.5 / 3.6e5))


def _graded(correct: int, total: int = 10) -> dict:
    return {tier: GradedSlice.of(correct, total).model_dump() for tier in ("simple", "complex", "hard")}


def test_the_most_accurate_pair_is_the_graded_best_and_ties_go_to_the_cheaper() -> None:
    doc = document(pair_dict("small", "h:1", accuracy=(0.5, 0.5, 0.5), graded_by_tier=_graded(5)),
                   pair_dict("large", "h:2", accuracy=(0.8, 0.8, 0.8), graded_by_tier=_graded(8),
                             throughput_tokens_per_s=100.0),
                   pair_dict("large-int8", "h:3", accuracy=(0.8, 0.8, 0.8), graded_by_tier=_graded(8),
                             throughput_tokens_per_s=200.0))
    assert most_accurate(doc).model_id == "large-int8"


def test_profiles_without_graded_counts_cannot_name_the_most_accurate_pair() -> None:
    with pytest.raises(ValueError, match="not measured by the profiler"):
        most_accurate(ProfileDocument.model_validate(
            {"pairs": [pair_dict("typed", "h:1")]}))
