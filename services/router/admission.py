"""Admission control at the router: refuse a request that live load would make late, instead of queueing it.

Pure: reads the routing `Decision` (whose predictions already include each worker's live queue, see
`services.router.policy`) and reuses the policy's latency model for the idle case; no I/O, no clock.

A Generate request is refused (RESOURCE_EXHAUSTED) when the decision is a FALLBACK whose chosen pair is predicted
to miss the budget under its worker's current load but would meet it on an idle worker: the budget is feasible, the
mesh is just too busy now, so the caller should retry later or elsewhere rather than be served late. A budget no
pair meets even idle is not overload: that request keeps the documented fallback (flagged) behaviour.

Retry hint: `retry-after-ms` = the smallest excess (predicted latency under load - budget) among the servable pairs
that load makes late, rounded up: the wait after which, at the current drain rate, that pair's queue has shrunk
enough to fit (the same load model as the prediction, so the hint and the refusal agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import ResourceExhaustedError
from core.vocabulary import RejectionReason, RouteOutcome
from services.router.policy import CandidateScore, Decision, predict_latency_ms

RETRY_AFTER_KEY = "retry-after-ms"
MAX_RETRY_AFTER_MS = 60_000


@dataclass(frozen=True)
class AdmissionRefusal:
    """Why a request is refused, and when to retry.

    Attributes:
        message: One sentence naming the pair and the figures (ms).
        retry_after_ms: When to retry, ms (>= 1).
    """

    message: str
    retry_after_ms: int

    def error(self) -> ResourceExhaustedError:
        """The exception the servicer raises (RESOURCE_EXHAUSTED with `retry-after-ms` trailing metadata)."""
        return ResourceExhaustedError(self.message, trailing_metadata=((RETRY_AFTER_KEY, str(self.retry_after_ms)),))


def _late_because_of_load(candidate: CandidateScore, budget_ms: float,
                          kv_cache_saturation_fraction: float) -> float | None:
    """The idle-worker latency (ms) when load alone makes the candidate late, else None."""
    if not candidate.rejected_for(RejectionReason.LATENCY_BUDGET):
        return None
    _, idle_latency_ms = predict_latency_ms(candidate.pair, None, candidate.expected_output_tokens,
                                          kv_cache_saturation_fraction)
    return idle_latency_ms if idle_latency_ms <= budget_ms else None


def check_admission(decision: Decision, kv_cache_saturation_fraction: float) -> AdmissionRefusal | None:
    """None to admit, or the refusal (rule and hint in the module docstring).

    Args:
        decision: The routing decision for the request.
        kv_cache_saturation_fraction: The policy's setting, so that the idle prediction matches its model.
    """
    chosen = decision.chosen
    if decision.outcome is not RouteOutcome.FALLBACK or chosen is None:
        return None
    budget_ms = decision.budget_ms
    idle_ms = _late_because_of_load(chosen, budget_ms, kv_cache_saturation_fraction)
    if idle_ms is None:
        return None
    excesses = [
        candidate.predicted_latency_ms - budget_ms
        for candidate in (chosen, *decision.retry_order)
        if _late_because_of_load(candidate, budget_ms, kv_cache_saturation_fraction) is not None
    ]
    retry_after_ms = min(MAX_RETRY_AFTER_MS, max(1, math.ceil(min(excesses))))
    message = (f"overloaded: {chosen.pair.name} is predicted to take {chosen.predicted_latency_ms:.0f} ms under its "
               f"current load (idle: {idle_ms:.0f} ms), over the {budget_ms:.0f} ms budget; retry after "
               f"{retry_after_ms} ms")
    return AdmissionRefusal(message, retry_after_ms)
