"""Summary figures of a sample run (pure), on hand-made results whose figures are easy to check."""

from __future__ import annotations

import json

import pytest

from clients.messages import Candidate, GenerationSummary, Pair, RouteDecision, Usage
from core.vocabulary import FinishReason, Quantization, RouteOutcome
from tools.mesh.report import PromptResult, most_accurate_pair, result_record, summarize

SMALL = Pair("tiny-s", Quantization.NONE)
LARGE = Pair("tiny-m", Quantization.NONE)


def _candidate(pair: Pair, accuracy: float, cost: float) -> Candidate:
    return Candidate(pair, True, (), 0.5, accuracy, 10.0, 100.0, cost, 10)


def _result(served: Pair, *, e2e_ms: float, actual: float, estimated: float, budget_ms: int = 1000,
            small_accuracy: float = 0.8) -> PromptResult:
    decision = RouteDecision("r", RouteOutcome.ROUTED, served, "because", (
        _candidate(SMALL, small_accuracy, 1.0e-6), _candidate(LARGE, 0.95, 4.0e-6)), None, False, 1, budget_ms)
    summary = GenerationSummary(Usage(10, 5, 15), FinishReason.STOP, served, e2e_ms / 4, e2e_ms, estimated, actual, 1)
    return PromptResult("gsm8k", "p", budget_ms, 0.5, decision, summary, "text", e2e_ms / 4, e2e_ms)


def test_traffic_share_latency_and_cost_against_the_most_accurate_pair() -> None:
    results = [
        _result(SMALL, e2e_ms=100, actual=0.5e-6, estimated=1.0e-6),
        _result(SMALL, e2e_ms=300, actual=0.5e-6, estimated=1.0e-6),
        _result(LARGE, e2e_ms=1200, actual=2.0e-6, estimated=4.0e-6),
        PromptResult("mmlu", "p", 1000, 0.9, None, None, "", None, 5.0, "UNAVAILABLE", "no healthy worker"),
    ]
    summary = summarize(results)
    assert (summary.requests, summary.succeeded, summary.errors) == (4, 3, {"UNAVAILABLE": 1})
    assert [(p.pair, p.requests) for p in summary.pairs] == [("tiny-s/none", 2), ("tiny-m/none", 1)]
    assert summary.pairs[0].share == pytest.approx(2 / 3)
    assert summary.e2e_p50_ms == pytest.approx(300)
    assert summary.within_budget == pytest.approx(2 / 4)  # 1200 ms > 1000 ms, and the failure is a miss
    assert summary.baseline_pair == "tiny-m/none"
    assert summary.actual_cost_usd == pytest.approx(3.0e-6)
    assert summary.estimated_cost_usd == pytest.approx(6.0e-6)
    assert summary.baseline_estimated_cost_usd == pytest.approx(12.0e-6)
    # each small request's actual cost scaled by the estimate ratio 4:1; the large one as it is
    assert summary.baseline_actual_cost_usd == pytest.approx(0.5e-6 * 4 * 2 + 2.0e-6)
    assert summary.savings_fraction == pytest.approx(1 - 3.0 / 6.0)
    assert summary.expected_accuracy == pytest.approx((0.8 + 0.8 + 0.95) / 3)
    assert summary.baseline_expected_accuracy == pytest.approx(0.95)
    assert summary.outcomes == {"routed": 3}
    assert summary.completion_tokens == 15


def test_most_accurate_pair_uses_the_mean_expected_accuracy() -> None:
    decisions = [r.decision for r in (_result(SMALL, e2e_ms=1, actual=0, estimated=0, small_accuracy=0.99),
                                      _result(SMALL, e2e_ms=1, actual=0, estimated=0, small_accuracy=0.5))]
    assert most_accurate_pair(decisions) == LARGE  # 0.95 mean beats (0.99 + 0.5) / 2
    assert most_accurate_pair([]) is None


def test_empty_run_summarises_without_errors() -> None:
    summary = summarize([])
    assert summary.requests == 0 and summary.pairs == [] and summary.savings_fraction == 0.0


def test_result_record_is_json_ready_and_names_the_serving_pair() -> None:
    record = result_record(_result(LARGE, e2e_ms=200, actual=2.0e-6, estimated=4.0e-6))
    assert json.loads(json.dumps(record)) == record
    assert (record["served_by"], record["expected_accuracy"], record["completion_tokens"]) == ("tiny-m/none", 0.95, 5)
    failed = result_record(PromptResult("mmlu", "p", 1000, 0.9, None, None, "", None, 5.0, "UNAVAILABLE", "down"))
    assert failed["outcome"] is None and failed["error_code"] == "UNAVAILABLE"
