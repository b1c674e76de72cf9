"""The default mode (cheapest pair meeting every hard constraint), expected output length per intent, and separate
input / output prices."""

from __future__ import annotations

import pytest

from core.vocabulary import ComplexityTier, RouteOutcome, RoutingMode, TaskIntent
from services.router.policy import decide, predict_latency_ms
from tests.router.helpers import document, pair_dict
from tests.router.test_policy import CONFIG, all_healthy, candidate, query, request

# Three pairs whose accuracy rises with their price: the cheapest feasible one depends on the threshold.
CHEAP = pair_dict("cheap", "127.0.0.1:2001", price_per_hour_usd=0.5, throughput_tokens_per_s=400.0,
                  accuracy=(0.70, 0.40, 0.20))
MIDDLE = pair_dict("middle", "127.0.0.1:2002", price_per_hour_usd=0.5, throughput_tokens_per_s=200.0,
                   accuracy=(0.85, 0.60, 0.40))
BEST = pair_dict("best", "127.0.0.1:2003", price_per_hour_usd=0.5, throughput_tokens_per_s=100.0,
                 accuracy=(0.95, 0.80, 0.60))


@pytest.mark.parametrize(("required", "expected"), [(0.0, "cheap"), (0.5, "middle"), (0.7, "best")])
def test_cheapest_mode_picks_the_cheapest_pair_meeting_the_threshold(required: float, expected: str) -> None:
    doc = document(BEST, CHEAP, MIDDLE)
    decision = decide(request(required_accuracy=required, mode=RoutingMode.CHEAPEST),
                      query(tier=ComplexityTier.COMPLEX), doc, all_healthy(doc), CONFIG)
    assert decision.outcome is RouteOutcome.ROUTED
    assert decision.chosen is not None and decision.chosen.pair.model_id == expected
    assert decision.reason.startswith(f"{expected}/none: cheapest")
    eligible = [c for c in decision.candidates if c.eligible]
    assert [c.estimated_cost_usd for c in eligible] == sorted(c.estimated_cost_usd for c in eligible)


def test_interactive_mode_can_prefer_a_dearer_more_accurate_pair() -> None:
    doc = document(BEST, CHEAP, MIDDLE)
    cheapest = decide(request(mode=RoutingMode.CHEAPEST), query(tier=ComplexityTier.HARD), doc, all_healthy(doc),
                      CONFIG)
    interactive = decide(request(mode=RoutingMode.INTERACTIVE), query(tier=ComplexityTier.HARD), doc,
                         all_healthy(doc), CONFIG)
    assert cheapest.chosen is not None and cheapest.chosen.pair.model_id == "cheap"
    assert interactive.chosen is not None and interactive.chosen.pair.model_id != "cheap"


def test_predicted_latency_uses_the_measured_output_length_of_the_intent() -> None:
    measured = pair_dict("measured", "127.0.0.1:2004", itl_p50_ms=20.0, ttft_p50_ms=50.0, ttft_p99_ms=90.0,
                         throughput_tokens_per_s=50.0,
                         mean_output_tokens_by_intent={"classification": 4.0, "math": 180.0})
    doc = document(measured)
    budget = 2000.0
    short = decide(request(budget_ms=budget, max_output_tokens=256, mode=RoutingMode.CHEAPEST),
                   query(intent=TaskIntent.CLASSIFICATION), doc, all_healthy(doc), CONFIG)
    long = decide(request(budget_ms=budget, max_output_tokens=256, mode=RoutingMode.CHEAPEST),
                  query(intent=TaskIntent.MATH), doc, all_healthy(doc), CONFIG)
    unmeasured = decide(request(budget_ms=budget, max_output_tokens=256, mode=RoutingMode.CHEAPEST),
                        query(intent=TaskIntent.CODE), doc, all_healthy(doc), CONFIG)
    assert candidate(short, "measured").expected_output_tokens == 4
    assert candidate(short, "measured").eligible  # 50 + 3 x 20 ms: well inside 2 s
    assert candidate(long, "measured").expected_output_tokens == 180
    assert not candidate(long, "measured").eligible  # 50 + 179 x 20 ms > 2 s
    assert candidate(unmeasured, "measured").expected_output_tokens == 256  # no measurement: the bound
    pair = doc.pairs[0]
    assert candidate(short, "measured").predicted_latency_ms == pytest.approx(predict_latency_ms(pair, None, 4, 0.95)[1])


def test_expected_output_length_is_bounded_by_max_output_tokens() -> None:
    doc = document(pair_dict("p", "127.0.0.1:2005", mean_output_tokens_by_intent={"math": 180.0}))
    decision = decide(request(max_output_tokens=32, mode=RoutingMode.CHEAPEST), query(intent=TaskIntent.MATH), doc,
                      all_healthy(doc), CONFIG)
    assert candidate(decision, "p").expected_output_tokens == 32


def test_cost_prices_input_and_output_tokens_separately() -> None:
    # Prefill at 10x the decode rate: an input token costs a tenth of an output token.
    priced = pair_dict("priced", "127.0.0.1:2006", price_per_hour_usd=0.5, throughput_tokens_per_s=100.0,
                       prefill_tokens_per_s=1000.0, cost_per_1m_input_tokens_usd=0.5 / (1000.0 * 3600) * 1e6)
    doc = document(priced)
    decision = decide(request(max_output_tokens=10, mode=RoutingMode.CHEAPEST), query(tokens=100), doc,
                      all_healthy(doc), CONFIG)
    pair = doc.pairs[0]
    expected = (100 * pair.cost_per_1m_input_tokens_usd + 10 * pair.cost_per_1m_tokens_usd) / 1e6
    assert candidate(decision, "priced").estimated_cost_usd == pytest.approx(expected)
    assert pair.cost_per_1m_input_tokens_usd == pytest.approx(pair.cost_per_1m_tokens_usd / 10)
