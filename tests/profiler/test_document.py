"""Derived figures and the profile document built from measurements (pure; the router's schema validates)."""

from __future__ import annotations

import datetime as dt

import pytest

from core.profiles import ProfileDocument, parse_profile_document, wilson_interval
from core.vocabulary import Quantization, TaskIntent
from tools.profiler.derived import cost_per_1m_tokens_usd, recommended_max_model_len, tokenization_ratio
from tools.profiler.document import GIB, pair_figures, profile_document
from tools.profiler.eval_set import EvalItem
from tools.profiler.measurement import ItemResult, PairMeasurement, WorkerFacts
from tools.profiler.scoring import score
from tools.profiler.stats import RequestTrace, summarize_level

FACTS = WorkerFacts(max_model_len=4096, kv_cache_capacity_tokens=100_000, memory_used_bytes=3 * GIB,
                    memory_total_bytes=24 * GIB, device="NVIDIA L4", engine_version="vllm 0.32.0", tokenizer="/m")


def test_cost_follows_the_formula() -> None:
    # $2/h at 500 tok/s: 1.8 M tokens per hour -> $1.111 per million.
    assert cost_per_1m_tokens_usd(2.0, 500.0) == pytest.approx(2.0 / 1.8)
    with pytest.raises(ValueError, match="must be positive"):
        cost_per_1m_tokens_usd(1.0, 0.0)


def test_tokenization_ratio_is_a_ratio_of_sums() -> None:
    assert tokenization_ratio([12, 30], [10, 20]) == pytest.approx(42 / 30)
    with pytest.raises(ValueError):
        tokenization_ratio([1], [1, 2])
    with pytest.raises(ValueError):
        tokenization_ratio([], [])


def test_recommended_max_model_len_is_the_p95_rounded_up() -> None:
    lengths = list(range(1, 101))  # P95 by linear interpolation: 95.05
    assert recommended_max_model_len(lengths) == 96
    assert recommended_max_model_len([300, 300, 300]) == 300


def item(index: int, tier: str, intent: str, expected: str) -> EvalItem:
    return EvalItem(id=f"i{index}", prompt=f"prompt {index}", tier=tier, intent=intent, expected=expected,
                    max_output_tokens=100)


def result(eval_item: EvalItem, output: str, prompt_tokens: int | None, reference_tokens: int = 10) -> ItemResult:
    return ItemResult(eval_item, score(eval_item, output), output, prompt_tokens, 3, reference_tokens,
                      eval_item.max_output_tokens or 0)


def levels():
    # c=1: two requests of 3 tokens 10 ms apart after a 50 ms TTFT; c=2: twice the rate.
    one = summarize_level(1, [RequestTrace(0.0, (0.05, 0.06, 0.07), (1, 1, 1), 0.07, 12, 3),
                              RequestTrace(0.07, (0.12, 0.13, 0.14), (1, 1, 1), 0.14, 12, 3)])
    two = summarize_level(2, [RequestTrace(0.0, (0.06, 0.07, 0.08), (1, 1, 1), 0.08, 12, 3),
                              RequestTrace(0.0, (0.06, 0.07, 0.08), (1, 1, 1), 0.08, 12, 3)])
    return one, two


def measurement(items: list[ItemResult], endpoint: str = "10.0.0.1:50061", model: str = "m") -> PairMeasurement:
    return PairMeasurement(endpoint, model, Quantization.AWQ, FACTS, levels(), tuple(items),
                           dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


def test_pair_figures_map_measurements_to_the_profile() -> None:
    items = [item(0, "simple", "math", "4"), item(1, "simple", "math", "5"), item(2, "complex", "chat", "hi"),
             item(3, "hard", "chat", "x")]
    results = [result(items[0], "4", 12), result(items[1], "6", 14), result(items[2], "hi", 11),
               result(items[3], "", None, reference_tokens=20)]  # refused by the worker
    figures = pair_figures(measurement(results), instance_price_per_hour_usd=1.0)
    profile = figures.profile
    one, two = levels()
    assert profile.ttft_p50_ms == pytest.approx(one.ttft_ms.p50) and profile.itl_p50_ms == pytest.approx(10.0)
    assert profile.throughput_tokens_per_s == pytest.approx(two.output_tokens_per_s) and figures.saturated == two
    assert profile.cost_per_1m_tokens_usd == pytest.approx(1.0 / (two.output_tokens_per_s * 3600) * 1e6)
    assert (profile.accuracy_by_tier.simple, profile.accuracy_by_tier.complex, profile.accuracy_by_tier.hard) == (
        0.5, 1.0, 0.0)
    assert profile.accuracy_by_intent == {TaskIntent.MATH: 0.5, TaskIntent.CHAT: 0.5}
    assert profile.tokenization_ratio == pytest.approx((12 + 14 + 11) / 30)  # the refused item has no count
    assert profile.gpu_memory_gib == pytest.approx(3.0) and profile.max_model_len == 4096
    assert figures.refused_items == 1
    # Graded counts with their Wilson intervals, and the answers' mean length per intent (refused items excluded).
    assert {tier.value: (g.correct, g.total) for tier, g in profile.graded_by_tier.items()} == {
        "simple": (1, 2), "complex": (1, 1), "hard": (0, 1)}
    assert (profile.graded_by_intent[TaskIntent.MATH].ci95_low, profile.graded_by_intent[TaskIntent.MATH].ci95_high
            ) == pytest.approx(wilson_interval(1, 2))
    assert profile.mean_output_tokens_by_intent == {TaskIntent.MATH: 3.0, TaskIntent.CHAT: 3.0}
    # Prefill rate: the lowest level's median of prompt tokens / TTFT (12 tokens in 50 ms), priced like output.
    assert profile.prefill_tokens_per_s == pytest.approx(12 / 0.05)
    assert profile.cost_per_1m_input_tokens_usd == pytest.approx(1.0 / (12 / 0.05 * 3600) * 1e6)
    # Contexts: 112, 114, 111 and the refused item's estimate ceil(20 x 37/30) = 25 + 100 = 125.
    assert figures.recommended_max_model_len == recommended_max_model_len([112, 114, 111, 125])
    document = profile_document([figures])
    assert parse_profile_document(document.to_json()) == document  # the router accepts it as is


def test_an_eval_set_missing_a_tier_cannot_make_a_profile() -> None:
    items = [item(0, "simple", "math", "4"), item(1, "complex", "math", "4")]
    with pytest.raises(ValueError, match="no item of tier hard"):
        pair_figures(measurement([result(i, "4", 5) for i in items]), 1.0)


def test_duplicate_pairs_are_refused_by_the_schema() -> None:
    items = [item(0, "simple", "math", "4"), item(1, "complex", "math", "4"), item(2, "hard", "math", "4")]
    results = [result(i, "4", 5) for i in items]
    first = pair_figures(measurement(results, endpoint="10.0.0.1:1"), 1.0)
    second = pair_figures(measurement(results, endpoint="10.0.0.2:1"), 1.0)
    with pytest.raises(ValueError, match="duplicate pair"):
        profile_document([first, second])
    assert isinstance(profile_document([first]), ProfileDocument)


def test_max_model_len_advice() -> None:
    from tools.profiler.report import max_model_len_advice

    items = [item(0, "simple", "math", "4"), item(1, "complex", "math", "4"), item(2, "hard", "math", "4")]
    figures = pair_figures(measurement([result(i, "4", 5) for i in items]), 1.0)  # contexts of 105 tokens
    assert figures.recommended_max_model_len == 105
    [advice] = max_model_len_advice([figures])  # the worker serves 4096
    assert "over twice" in advice and "consider 105" in advice
