"""Unit tests of admission control: the router's rule over real policy decisions, the worker's over a fake clock."""

from __future__ import annotations

import grpc
import pytest

from core.classification import Classification
from core.errors import ResourceExhaustedError
from core.vocabulary import ComplexityTier, RouteOutcome, TaskIntent
from services.router.admission import RETRY_AFTER_KEY, check_admission
from services.router.policy import (
    LoadSnapshot,
    PolicyConfig,
    RoutingRequest,
    WorkerView,
    decide,
)
from services.worker.admission import WorkerAdmission
from tests.router.helpers import document, pair_dict

CONFIG = PolicyConfig()
QUERY = Classification(tier=ComplexityTier.SIMPLE, intent=TaskIntent.CHAT, numeric_token_share=0.0,
                            estimated_input_tokens=20)
# Idle: 10 ms TTFT + 15 x 10 ms ITL = 160 ms for 16 output tokens; each running stream costs 1000/300 ms per token.
PAIR_A = pair_dict("a", "127.0.0.1:1", throughput_tokens_per_s=300.0, ttft_p50_ms=10.0, itl_p50_ms=10.0)
PAIR_B = pair_dict("b", "127.0.0.1:2", throughput_tokens_per_s=300.0, ttft_p50_ms=10.0, itl_p50_ms=10.0,
                   accuracy=(0.95, 0.9, 0.8))
DOC = document(PAIR_A, PAIR_B)


def decision(budget_ms: float, running: dict[str, int], max_output_tokens: int = 16):
    workers = {pair.key: WorkerView(healthy=True, load=LoadSnapshot(running_requests=running[pair.model_id]))
               for pair in DOC.pairs}
    return decide(RoutingRequest(max_output_tokens=max_output_tokens, budget_ms=budget_ms), QUERY, DOC, workers,
                  CONFIG)


def test_router_admits_a_routed_request() -> None:
    assert decision(500.0, {"a": 0, "b": 0}).outcome is RouteOutcome.ROUTED
    assert check_admission(decision(500.0, {"a": 0, "b": 0}), CONFIG.kv_cache_saturation_fraction) is None


def test_router_refuses_when_load_alone_makes_every_pair_late() -> None:
    # 20 running streams: ITL = 21 x 1000/300 = 70 ms, 10 + 15 x 70 = 1060 ms > 500 ms; idle it would be 160 ms.
    loaded = decision(500.0, {"a": 20, "b": 29})
    assert loaded.outcome is RouteOutcome.FALLBACK
    refusal = check_admission(loaded, CONFIG.kv_cache_saturation_fraction)
    assert refusal is not None
    # The hint is the smaller excess: pair a (1060 - 500 = 560 ms) beats pair b (10 + 15 x 100 - 500 = 1010 ms).
    assert refusal.retry_after_ms == 560
    error = refusal.error()
    assert isinstance(error, ResourceExhaustedError) and error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.trailing_metadata == ((RETRY_AFTER_KEY, "560"),)
    assert "b/none" in error.message or "a/none" in error.message


def test_router_keeps_the_fallback_for_a_budget_no_idle_pair_meets() -> None:
    # 100 ms < the idle 160 ms: not overload, the caller asked for the impossible; the flagged fallback serves it.
    infeasible = decision(100.0, {"a": 0, "b": 0})
    assert infeasible.outcome is RouteOutcome.FALLBACK
    assert check_admission(infeasible, CONFIG.kv_cache_saturation_fraction) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def busy_worker(clock: FakeClock, itl_s: float = 0.05, ttft_s: float = 0.2, enabled: bool = True) -> WorkerAdmission:
    """One stream in flight that took `ttft_s` to its first token and then one token per `itl_s`."""
    admission = WorkerAdmission(enabled=enabled, window_s=2.0, clock=clock)
    admission.admit("running", 100, None)
    clock.now += ttft_s
    admission.on_tokens("running", 1)
    for _ in range(10):
        clock.now += itl_s
        admission.on_tokens("running", 1)
    return admission


def test_worker_predicts_from_measured_ttft_and_itl() -> None:
    clock = FakeClock()
    admission = busy_worker(clock)
    assert admission.predicted_latency_s(21) == pytest.approx(0.2 + 20 * 0.05)


def test_worker_refuses_what_the_deadline_cannot_cover_with_a_retry_hint() -> None:
    clock = FakeClock()
    admission = busy_worker(clock)
    with pytest.raises(ResourceExhaustedError) as refused:
        admission.admit("late", 21, time_remaining_s=0.5)  # predicted 1.2 s
    assert refused.value.trailing_metadata == (("retry-after-ms", "700"),)
    assert admission.in_flight == 1  # the refused request is not tracked
    admission.admit("fits", 21, time_remaining_s=2.0)
    assert admission.in_flight == 2


def test_worker_admits_when_idle_without_deadline_or_disabled() -> None:
    clock = FakeClock()
    admission = busy_worker(clock)
    admission.admit("no-deadline", 1000, None)
    admission.release("running")
    admission.release("no-deadline")
    admission.admit("idle", 1000, 0.01)  # nothing in flight: no queue to wait in
    disabled = busy_worker(FakeClock(), enabled=False)
    disabled.admit("anything", 1000, 0.01)


def test_worker_measurements_expire_with_the_window() -> None:
    clock = FakeClock()
    admission = busy_worker(clock)
    clock.now += 2.5  # the stream went quiet: nothing measured in the last 2 s
    assert admission.predicted_latency_s(21) is None
    admission.admit("after-quiet", 21, 0.01)
