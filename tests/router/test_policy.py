"""Unit tests of the routing policy: every constraint, the utility's weights, ties and the fallback."""

from __future__ import annotations

import random

import pytest

from core.classification import Classification
from core.vocabulary import (
    ComplexityTier,
    Quantization,
    RejectionReason,
    RouteOutcome,
    RoutingMode,
    TaskIntent,
)
from services.router.circuit_breaker import CircuitState
from services.router.policy import (
    DEFAULT_WEIGHTS,
    LoadSnapshot,
    PolicyConfig,
    RejectedStatus,
    RoutingRequest,
    WorkerView,
    decide,
    predict_latency_ms,
)
from tests.router.helpers import document, pair_dict

CONFIG = PolicyConfig()
HEALTHY = WorkerView(healthy=True)

# A cheap, fast, less accurate pair and an expensive, slower, accurate one.
SMALL = pair_dict("small", "127.0.0.1:1001", quantization="awq", price_per_hour_usd=0.5,
                  throughput_tokens_per_s=2000.0, ttft_p50_ms=10.0, ttft_p99_ms=20.0, itl_p50_ms=3.0,
                  accuracy=(0.9, 0.6, 0.3))
LARGE = pair_dict("large", "127.0.0.1:1002", quantization="none", price_per_hour_usd=4.0,
                  throughput_tokens_per_s=500.0, ttft_p50_ms=40.0, ttft_p99_ms=80.0, itl_p50_ms=12.0,
                  accuracy=(0.95, 0.9, 0.85))


def query(tier: ComplexityTier = ComplexityTier.SIMPLE, intent: TaskIntent | None = TaskIntent.QUESTION_ANSWERING, numeric: float = 0.0,
          tokens: int = 50) -> Classification:
    return Classification(tier=tier, intent=intent, numeric_token_share=numeric, estimated_input_tokens=tokens)


def request(budget_ms: float = 5000.0, max_output_tokens: int = 50, required_accuracy: float = 0.0,
            mode: RoutingMode = RoutingMode.INTERACTIVE) -> RoutingRequest:
    return RoutingRequest(max_output_tokens=max_output_tokens, budget_ms=budget_ms,
                          required_accuracy=required_accuracy, mode=mode)


def all_healthy(doc) -> dict:
    return {pair.key: HEALTHY for pair in doc.pairs}


def candidate(decision, model_id: str):
    return next(c for c in decision.candidates if c.pair.model_id == model_id)


def reasons(decision, model_id: str) -> set[RejectionReason]:
    return {r.reason for r in candidate(decision, model_id).rejections}


def test_latency_budget_rejects_with_predicted_figures() -> None:
    doc = document(SMALL, LARGE)
    # large: 40 + 12 x 49 = 628 ms; small: 10 + 3 x 49 = 157 ms.
    decision = decide(request(budget_ms=300.0), query(), doc, all_healthy(doc), CONFIG)
    assert reasons(decision, "large") == {RejectionReason.LATENCY_BUDGET}
    detail = candidate(decision, "large").rejections[0].detail
    assert "628.0 ms" in detail and "300.0 ms" in detail
    assert decision.outcome is RouteOutcome.ROUTED and decision.chosen.pair.model_id == "small"


def test_accuracy_for_the_query_tier_changes_the_choice() -> None:
    doc = document(SMALL, LARGE)
    simple = decide(request(required_accuracy=0.8), query(ComplexityTier.SIMPLE), doc, all_healthy(doc), CONFIG)
    hard = decide(request(required_accuracy=0.8), query(ComplexityTier.HARD), doc, all_healthy(doc), CONFIG)
    assert simple.chosen.pair.model_id == "small"
    assert hard.chosen.pair.model_id == "large"
    assert reasons(hard, "small") == {RejectionReason.ACCURACY}
    assert "0.300 on hard < required 0.800" in candidate(hard, "small").rejections[0].detail
    assert candidate(hard, "large").expected_accuracy == pytest.approx(0.85)


def test_intent_accuracy_lowers_the_tier_accuracy_where_measured() -> None:
    large_bad_at_math = {**LARGE, "accuracy_by_intent": {"math": 0.5}}
    doc = document(SMALL, large_bad_at_math)
    math_query = decide(request(required_accuracy=0.8), query(ComplexityTier.HARD, TaskIntent.MATH), doc, all_healthy(doc),
                        CONFIG)
    assert reasons(math_query, "large") == {RejectionReason.ACCURACY}
    assert "hard/math" in candidate(math_query, "large").rejections[0].detail
    code_query = decide(request(required_accuracy=0.8), query(ComplexityTier.HARD, TaskIntent.CODE), doc, all_healthy(doc),
                        CONFIG)
    assert code_query.chosen.pair.model_id == "large"  # intent not measured: the tier's figure stands


def test_context_length_uses_each_pairs_tokenization_ratio() -> None:
    wordy = pair_dict("wordy", "127.0.0.1:1003", tokenization_ratio=2.0, max_model_len=1024)
    compact = pair_dict("compact", "127.0.0.1:1004", tokenization_ratio=1.0, max_model_len=1024)
    doc = document(wordy, compact)
    decision = decide(request(max_output_tokens=100), query(tokens=500), doc, all_healthy(doc), CONFIG)
    assert reasons(decision, "wordy") == {RejectionReason.CONTEXT_LENGTH}
    assert candidate(decision, "wordy").estimated_input_tokens == 1000
    assert candidate(decision, "compact").estimated_input_tokens == 500
    assert "1000 input + 100 output tokens > max_model_len 1024" in candidate(decision, "wordy").rejections[0].detail
    assert decision.chosen.pair.model_id == "compact"


def test_estimated_cost_uses_the_tokenization_ratio() -> None:
    pair = pair_dict("p", "127.0.0.1:1005", price_per_hour_usd=3.6, throughput_tokens_per_s=1000.0,
                     tokenization_ratio=1.5)  # 1 USD per 1M tokens
    doc = document(pair)
    decision = decide(request(max_output_tokens=100), query(tokens=200), doc, all_healthy(doc), CONFIG)
    assert decision.chosen.estimated_cost_usd == pytest.approx((300 + 100) / 1e6)


def test_unhealthy_and_unknown_workers_are_rejected() -> None:
    doc = document(SMALL, LARGE)
    workers = {doc.pairs[0].key: WorkerView(healthy=False)}  # large has no state at all
    decision = decide(request(), query(), doc, workers, CONFIG)
    assert reasons(decision, "small") == {RejectionReason.UNHEALTHY}
    assert reasons(decision, "large") == {RejectionReason.UNHEALTHY}
    assert decision.outcome is RouteOutcome.REJECTED
    assert decision.rejected_status is RejectedStatus.NO_HEALTHY_PAIR


def test_open_circuit_is_rejected_and_half_open_probe_is_allowed() -> None:
    doc = document(SMALL, LARGE)
    workers = all_healthy(doc)
    workers[doc.pairs[0].key] = WorkerView(healthy=True, circuit=CircuitState.OPEN, circuit_allows=False)
    decision = decide(request(), query(), doc, workers, CONFIG)
    assert reasons(decision, "small") == {RejectionReason.CIRCUIT_OPEN}
    assert decision.chosen.pair.model_id == "large"
    workers[doc.pairs[0].key] = WorkerView(healthy=True, circuit=CircuitState.HALF_OPEN, circuit_allows=True)
    assert decide(request(), query(), doc, workers, CONFIG).chosen.pair.model_id == "small"


@pytest.mark.parametrize(("share", "fp8_rejected"), [(0.10, False), (0.30, False), (0.31, True), (0.9, True)])
def test_fp8_is_excluded_on_numeric_heavy_prompts(share: float, fp8_rejected: bool) -> None:
    fp8 = {**SMALL, "quantization": "fp8"}
    doc = document(fp8, LARGE)
    decision = decide(request(), query(numeric=share), doc, all_healthy(doc), CONFIG)
    assert (RejectionReason.QUANTIZATION_RULE in reasons(decision, "small")) is fp8_rejected
    assert decision.chosen.pair.model_id == ("large" if fp8_rejected else "small")
    assert not reasons(decision, "large")  # the rule only concerns FP8


def test_fp8_threshold_is_configurable() -> None:
    doc = document({**SMALL, "quantization": "fp8"}, LARGE)
    lenient = PolicyConfig(fp8_max_numeric_token_share=0.5)
    decision = decide(request(), query(numeric=0.4), doc, all_healthy(doc), lenient)
    assert decision.chosen.pair.quantization is Quantization.FP8


def test_live_queue_raises_predicted_latency() -> None:
    pair = document(SMALL).pairs[0]
    idle_ttft, idle_latency = predict_latency_ms(pair, None, 50, 0.95)
    assert (idle_ttft, idle_latency) == pytest.approx((10.0, 10.0 + 3.0 * 49))
    ttft, _ = predict_latency_ms(pair, LoadSnapshot(waiting_requests=4), 50, 0.95)
    assert ttft == pytest.approx(10.0 + 4 * 10.0)
    # 2000 tok/s shared by 11 streams: 5.5 ms per token instead of the idle 3 ms.
    _, busy_latency = predict_latency_ms(pair, LoadSnapshot(running_requests=10), 50, 0.95)
    assert busy_latency == pytest.approx(10.0 + 5.5 * 49)
    full_ttft, _ = predict_latency_ms(pair, LoadSnapshot(kv_cache_usage_fraction=0.97), 50, 0.95)
    assert full_ttft == pytest.approx(10.0 + 20.0)


def test_load_on_the_best_pair_moves_traffic_to_the_next() -> None:
    doc = document(SMALL, LARGE)
    workers = all_healthy(doc)
    assert decide(request(budget_ms=1000.0), query(), doc, workers, CONFIG).chosen.pair.model_id == "small"
    workers[doc.pairs[0].key] = WorkerView(healthy=True, load=LoadSnapshot(waiting_requests=100))
    decision = decide(request(budget_ms=1000.0), query(), doc, workers, CONFIG)
    assert reasons(decision, "small") == {RejectionReason.LATENCY_BUDGET}
    assert decision.chosen.pair.model_id == "large"


def test_mode_weights_interactive_favours_latency_batch_favours_cost() -> None:
    # Same accuracy; "fast" is quicker but dearer, "cheap" slower but cheaper.
    fast = pair_dict("fast", "127.0.0.1:1006", price_per_hour_usd=4.0, throughput_tokens_per_s=1000.0,
                     ttft_p50_ms=10.0, ttft_p99_ms=20.0, itl_p50_ms=2.0)
    cheap = pair_dict("cheap", "127.0.0.1:1007", price_per_hour_usd=1.0, throughput_tokens_per_s=1000.0,
                      ttft_p50_ms=50.0, ttft_p99_ms=90.0, itl_p50_ms=8.0)
    doc = document(fast, cheap)
    interactive = decide(request(budget_ms=1000.0, mode=RoutingMode.INTERACTIVE), query(), doc, all_healthy(doc),
                         CONFIG)
    batch = decide(request(budget_ms=1000.0, mode=RoutingMode.BATCH), query(), doc, all_healthy(doc), CONFIG)
    assert interactive.chosen.pair.model_id == "fast"
    assert batch.chosen.pair.model_id == "cheap"
    for mode, weights in DEFAULT_WEIGHTS.items():
        assert weights.accuracy + weights.latency + weights.cost == pytest.approx(1.0), mode
    assert DEFAULT_WEIGHTS[RoutingMode.INTERACTIVE].latency > DEFAULT_WEIGHTS[RoutingMode.INTERACTIVE].cost
    assert DEFAULT_WEIGHTS[RoutingMode.BATCH].cost > DEFAULT_WEIGHTS[RoutingMode.BATCH].latency


def test_utilities_are_normalised_and_candidates_ranked_best_first() -> None:
    doc = document(SMALL, LARGE, pair_dict("third", "127.0.0.1:1008", ttft_p50_ms=5000.0, ttft_p99_ms=6000.0))
    decision = decide(request(budget_ms=1000.0), query(), doc, all_healthy(doc), CONFIG)
    eligible = [c for c in decision.candidates if c.eligible]
    assert [c.utility for c in eligible] == sorted((c.utility for c in eligible), reverse=True)
    assert all(0.0 <= c.utility <= 1.0 for c in decision.candidates)
    assert decision.candidates[-1].pair.model_id == "third" and decision.candidates[-1].utility == 0.0
    assert len(decision.candidates) == 3
    assert decision.retry_order == tuple(eligible[1:])


def test_latency_does_not_swamp_accuracy_unlike_the_seed_router() -> None:
    # Both within budget; "accurate" is 0.4 more accurate and 40 ms slower, at the same price.
    accurate = pair_dict("accurate", "127.0.0.1:1009", ttft_p50_ms=100.0, ttft_p99_ms=150.0, itl_p50_ms=1.0,
                         accuracy=(0.95, 0.95, 0.95))
    quick = pair_dict("quick", "127.0.0.1:1010", ttft_p50_ms=60.0, ttft_p99_ms=90.0, itl_p50_ms=1.0,
                      accuracy=(0.55, 0.55, 0.55))
    doc = document(accurate, quick)
    decision = decide(request(budget_ms=1000.0, max_output_tokens=1), query(), doc, all_healthy(doc), CONFIG)
    seed_utility = {c.pair.model_id: c.expected_accuracy - 0.05 * c.predicted_latency_ms
                    for c in decision.candidates}
    assert max(seed_utility, key=seed_utility.get) == "quick"  # the seed's 0.05/ms weight picks the worse model
    assert decision.chosen.pair.model_id == "accurate"


def test_ties_break_deterministically_whatever_the_document_order() -> None:
    twins = [pair_dict(name, f"127.0.0.1:{1100 + i}") for i, name in enumerate(["m-b", "m-a", "m-c"])]
    chosen = set()
    for seed in range(5):
        shuffled = twins[:]
        random.Random(seed).shuffle(shuffled)
        doc = document(*shuffled)
        decision = decide(request(), query(), doc, all_healthy(doc), CONFIG)
        chosen.add(decision.chosen.pair.model_id)
        assert [c.pair.model_id for c in decision.candidates] == ["m-a", "m-b", "m-c"]
    assert chosen == {"m-a"}


def test_fallback_is_the_most_accurate_healthy_pair_and_is_flagged() -> None:
    best_but_down = pair_dict("best", "127.0.0.1:1011", accuracy=(0.99, 0.99, 0.99))
    doc = document(SMALL, LARGE, best_but_down)
    workers = all_healthy(doc)
    workers[doc.pairs[2].key] = WorkerView(healthy=False)
    decision = decide(request(budget_ms=5.0), query(ComplexityTier.HARD), doc, workers, CONFIG)
    assert decision.outcome is RouteOutcome.FALLBACK
    assert decision.chosen.pair.model_id == "large"
    assert "fallback" in decision.reason
    assert all(not c.eligible for c in decision.candidates)
    assert [c.pair.model_id for c in decision.retry_order] == ["small"]


def test_fallback_follows_the_profiles_not_a_hard_coded_endpoint() -> None:
    doc = document({**SMALL, "accuracy_by_tier": {"simple": 0.9, "complex": 0.9, "hard": 0.99}}, LARGE)
    decision = decide(request(budget_ms=5.0), query(ComplexityTier.HARD), doc, all_healthy(doc), CONFIG)
    assert decision.outcome is RouteOutcome.FALLBACK and decision.chosen.pair.model_id == "small"


def test_prompt_too_long_for_every_healthy_pair_is_rejected_as_context() -> None:
    doc = document(pair_dict("a", "127.0.0.1:1012", max_model_len=256), pair_dict("b", "127.0.0.1:1013",
                                                                                  max_model_len=512))
    decision = decide(request(), query(tokens=1000), doc, all_healthy(doc), CONFIG)
    assert decision.outcome is RouteOutcome.REJECTED
    assert decision.rejected_status is RejectedStatus.CONTEXT_TOO_LONG
    assert decision.chosen is None
