"""The routing decision: hard constraints, a normalised utility, a deterministic tie-break, a flagged fallback.

Pure: no I/O, no clock. `decide()` takes the request, the query's classification, the profile document and each
worker's live state, and returns a `Decision` holding every candidate with its figures and rejections.

1. Hard constraints, each rejection recorded with its reason and figures (`RejectionReason`):
   - LATENCY_BUDGET: predicted latency (below) > the effective budget (ms).
   - ACCURACY: the pair's accuracy for the query's tier (lowered to its intent's accuracy where measured, see
     `PairProfile.expected_accuracy`) < required_accuracy.
   - CONTEXT_LENGTH: estimated input tokens (reference-tokenizer estimate x the pair's tokenization_ratio, rounded
     up) + max_output_tokens > max_model_len.
   - UNHEALTHY / CIRCUIT_OPEN: the worker's load stream is down or reports not serving / its breaker refuses traffic.
   - QUANTIZATION_RULE: FP8 when the prompt's numeric-token share > `fp8_max_numeric_token_share` (0.30 by default:
     FP8 W8A8 keeps only ~3 significant bits of mantissa in activations, and digit tokens are where that costs
     answers; the threshold is docs/architecture.md's).
2. Predicted latency, from the profile and the worker's live load (`LoadSnapshot`):
   - queue wait = waiting_requests x ttft_p50_ms (each request ahead of ours is admitted, and prefilled, first),
     plus ttft_p99_ms when KV-cache use >= `kv_cache_saturation_fraction` (a full cache means our request waits for
     blocks to be freed or preempts someone: at least one slow prefill round);
   - predicted TTFT = ttft_p50_ms + queue wait;
   - ITL under load = max(itl_p50_ms, 1000 x (running_requests + 1) / throughput_tokens_per_s): the engine's
     measured aggregate throughput is shared by every running stream, ours included; an idle engine decodes at
     its single-stream ITL;
   - predicted latency = predicted TTFT + ITL under load x (expected output tokens - 1) (the first token is in
     TTFT). Expected output tokens = the pair's measured mean for the query's intent
     (`PairProfile.mean_output_tokens_by_intent`, from the profiler's graded run), at most the request's
     max_output_tokens; max_output_tokens itself where the intent was not measured (the safe upper bound). Always
     using the maximum rejects most pairs under a 2 s budget although most answers stop far earlier.
3. Choice among the survivors, by mode:
   - cheapest (the default, and the seed's rule: "the smallest model-quantization pair that satisfies the latency
     SLA and accuracy threshold"): the lowest estimated cost; utility weights accuracy 0, latency 0, cost 1, so
     the utility below ranks by cost alone;
   - interactive and batch: the weighted utility below.
   Utility of each survivor, every term in [0, 1] so that no unit swamps another:
       utility = w_acc x accuracy + w_lat x (1 - predicted_latency / budget) + w_cost x (1 - cost / max_cost)
   where max_cost is the most expensive candidate's estimated cost for this request. Weights sum to 1 per mode
   (`DEFAULT_WEIGHTS`), so utility is in [0, 1]:
   - interactive: accuracy 0.5, latency 0.35, cost 0.15 (a person is waiting: latency is worth twice cost);
   - batch:       accuracy 0.5, latency 0.05, cost 0.45 (nobody waits: within the budget, cost is what matters).
   Accuracy keeps the same weight in both modes: the mode trades latency against cost, never quality. Compare the
   seed article's 0.05 per ms latency weight: 20 ms of latency there outweighs the whole accuracy range; here the
   whole budget is worth at most 0.35 and the accuracy range 0.5.
4. Ties (utility within 1e-9) break on lower estimated cost, then lower predicted latency, then the pair name:
   the same inputs give the same choice on every router.
5. No survivor: FALLBACK to the most accurate pair (for this tier and intent) that is healthy, circuit closed and
   whose context fits (ties: lower predicted latency, then name), flagged in the decision. The fallback is taken
   from the live profiles, never a hard-coded endpoint. No such pair: REJECTED, with `rejected_status` telling the
   servicer which gRPC status to answer (no healthy worker -> UNAVAILABLE; the prompt fits no healthy pair's context
   -> INVALID_ARGUMENT).

Costs: estimated cost = (estimated input tokens x input price + expected output tokens x output price) / 1e6, with
the pair's own tokenization ratio and its measured prices per 1M tokens (`cost_per_1m_input_tokens_usd`, from the
measured prefill rate, and `cost_per_1m_tokens_usd`, from the decode throughput); `actual_cost_usd` uses the
worker's reported usage instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

from core.classification import Classification
from core.profiles import PairProfile, ProfileDocument
from core.vocabulary import (
    Quantization,
    RejectionReason,
    RouteOutcome,
    RoutingMode,
)
from services.router.circuit_breaker import CircuitState

TIE_EPSILON = 1e-9


class RejectedStatus(Enum):
    """Why a REJECTED decision serves nobody, and so which status the caller gets."""

    NO_HEALTHY_PAIR = "no_healthy_pair"  # UNAVAILABLE
    CONTEXT_TOO_LONG = "context_too_long"  # INVALID_ARGUMENT


@dataclass(frozen=True)
class UtilityWeights:
    """Weights of the utility terms; each >= 0, summing to 1."""

    accuracy: float
    latency: float
    cost: float

    def __post_init__(self) -> None:
        if min(self.accuracy, self.latency, self.cost) < 0:
            raise ValueError("utility weights must be >= 0")
        if not math.isclose(self.accuracy + self.latency + self.cost, 1.0, abs_tol=1e-6):
            raise ValueError("utility weights must sum to 1")


CHEAPEST_WEIGHTS = UtilityWeights(accuracy=0.0, latency=0.0, cost=1.0)
DEFAULT_WEIGHTS: dict[RoutingMode, UtilityWeights] = {
    RoutingMode.CHEAPEST: CHEAPEST_WEIGHTS,
    RoutingMode.INTERACTIVE: UtilityWeights(accuracy=0.5, latency=0.35, cost=0.15),
    RoutingMode.BATCH: UtilityWeights(accuracy=0.5, latency=0.05, cost=0.45),
}


@dataclass(frozen=True)
class PolicyConfig:
    """Tunables of the policy (see the module docstring for their meaning and sources)."""

    weights: dict[RoutingMode, UtilityWeights] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    fp8_max_numeric_token_share: float = 0.30
    kv_cache_saturation_fraction: float = 0.95


@dataclass(frozen=True)
class RoutingRequest:
    """The request's requirements. `budget_ms` is the effective budget (see `deadlines.effective_budget_ms`)."""

    max_output_tokens: int
    budget_ms: float
    required_accuracy: float = 0.0
    mode: RoutingMode = RoutingMode.CHEAPEST


@dataclass(frozen=True)
class LoadSnapshot:
    """A worker's last load report."""

    running_requests: int = 0
    waiting_requests: int = 0
    kv_cache_usage_fraction: float = 0.0


@dataclass(frozen=True)
class WorkerView:
    """The router's view of the worker serving one pair (its load stream and breaker). `load` is None when no report
    has arrived."""

    healthy: bool
    circuit: CircuitState = CircuitState.CLOSED
    circuit_allows: bool = True
    load: LoadSnapshot | None = None


@dataclass(frozen=True)
class Rejection:
    reason: RejectionReason
    detail: str


@dataclass(frozen=True)
class CandidateScore:
    """How one pair scored. `utility` is 0 for rejected pairs."""

    pair: PairProfile
    eligible: bool
    rejections: tuple[Rejection, ...]
    utility: float
    expected_accuracy: float
    predicted_ttft_ms: float
    predicted_latency_ms: float
    estimated_cost_usd: float
    estimated_input_tokens: int
    expected_output_tokens: int

    def rejected_for(self, reason: RejectionReason) -> bool:
        return any(rejection.reason is reason for rejection in self.rejections)


@dataclass(frozen=True)
class Decision:
    """The outcome of routing one request.

    Attributes:
        outcome: ROUTED, FALLBACK or REJECTED.
        chosen: The chosen candidate (None when REJECTED).
        reason: One sentence saying why.
        candidates: Every candidate, best first (eligible by utility, then the rest by accuracy).
        retry_order: Pairs to try after `chosen` fails before its first token, best first.
        rejected_status: Set when REJECTED.
        profiles_version: Version of the document decided from.
        budget_ms: The effective budget used.
    """

    outcome: RouteOutcome
    chosen: CandidateScore | None
    reason: str
    candidates: tuple[CandidateScore, ...]
    retry_order: tuple[CandidateScore, ...]
    rejected_status: RejectedStatus | None
    profiles_version: int
    budget_ms: float


def estimated_input_tokens(pair: PairProfile, reference_input_tokens: int) -> int:
    """Input tokens under this pair's tokenizer: the reference estimate x tokenization_ratio, rounded up."""
    return math.ceil(reference_input_tokens * pair.tokenization_ratio - 1e-9)


def cost_usd(pair: PairProfile, input_tokens: int, output_tokens: int) -> float:
    """USD for a request of `input_tokens` and `output_tokens` at the pair's derived prices per 1M tokens."""
    return (input_tokens * pair.input_cost_per_1m_tokens_usd() + output_tokens * pair.cost_per_1m_tokens_usd) / 1e6


def predict_latency_ms(pair: PairProfile, load: LoadSnapshot | None, output_tokens: int,
                       kv_cache_saturation_fraction: float) -> tuple[float, float]:
    """(predicted TTFT, predicted end-to-end latency) in ms for `output_tokens` tokens; the model is in the module
    docstring."""
    load = load or LoadSnapshot()
    queue_wait_ms = load.waiting_requests * pair.ttft_p50_ms
    if load.kv_cache_usage_fraction >= kv_cache_saturation_fraction:
        queue_wait_ms += pair.ttft_p99_ms
    ttft_ms = pair.ttft_p50_ms + queue_wait_ms
    itl_ms = max(pair.itl_p50_ms, 1000.0 * (load.running_requests + 1) / pair.throughput_tokens_per_s)
    return ttft_ms, ttft_ms + itl_ms * max(0, output_tokens - 1)


def _score(pair: PairProfile, worker: WorkerView, request: RoutingRequest, query: Classification,
           config: PolicyConfig) -> CandidateScore:
    rejections: list[Rejection] = []
    accuracy = pair.expected_accuracy(query.tier, query.intent)
    input_tokens = estimated_input_tokens(pair, query.estimated_input_tokens)
    output_tokens = pair.expected_output_tokens(query.intent, request.max_output_tokens)
    ttft_ms, latency_ms = predict_latency_ms(pair, worker.load, output_tokens, config.kv_cache_saturation_fraction)
    if not worker.healthy:
        rejections.append(Rejection(RejectionReason.UNHEALTHY, "worker load stream down or not serving"))
    if not worker.circuit_allows:
        rejections.append(Rejection(RejectionReason.CIRCUIT_OPEN, f"circuit breaker {worker.circuit.value}"))
    if latency_ms > request.budget_ms:
        rejections.append(Rejection(
            RejectionReason.LATENCY_BUDGET,
            f"predicted {latency_ms:.1f} ms (TTFT {ttft_ms:.1f} ms) > budget {request.budget_ms:.1f} ms",
        ))
    if accuracy < request.required_accuracy:
        slice_name = query.tier.value + (f"/{query.intent.value}" if query.intent in pair.accuracy_by_intent else "")
        rejections.append(Rejection(
            RejectionReason.ACCURACY,
            f"accuracy {accuracy:.3f} on {slice_name} < required {request.required_accuracy:.3f}",
        ))
    if input_tokens + request.max_output_tokens > pair.max_model_len:
        rejections.append(Rejection(
            RejectionReason.CONTEXT_LENGTH,
            f"{input_tokens} input + {request.max_output_tokens} output tokens > max_model_len {pair.max_model_len}",
        ))
    if pair.quantization is Quantization.FP8 and query.numeric_token_share > config.fp8_max_numeric_token_share:
        rejections.append(Rejection(
            RejectionReason.QUANTIZATION_RULE,
            f"fp8 with numeric-token share {query.numeric_token_share:.2f} > "
            f"{config.fp8_max_numeric_token_share:.2f}",
        ))
    return CandidateScore(
        pair=pair,
        eligible=not rejections,
        rejections=tuple(rejections),
        utility=0.0,
        expected_accuracy=accuracy,
        predicted_ttft_ms=ttft_ms,
        predicted_latency_ms=latency_ms,
        estimated_cost_usd=cost_usd(pair, input_tokens, output_tokens),
        estimated_input_tokens=input_tokens,
        expected_output_tokens=output_tokens,
    )


def utility(candidate: CandidateScore, weights: UtilityWeights, budget_ms: float, max_cost_usd: float) -> float:
    """The normalised utility in [0, 1] (formula in the module docstring)."""
    latency_term = max(0.0, 1.0 - candidate.predicted_latency_ms / budget_ms) if budget_ms > 0 else 0.0
    cost_term = 1.0 - candidate.estimated_cost_usd / max_cost_usd if max_cost_usd > 0 else 1.0
    return weights.accuracy * candidate.expected_accuracy + weights.latency * latency_term + weights.cost * cost_term


def _rank_key(candidate: CandidateScore) -> tuple:
    # Utility rounded to the tie tolerance so that float noise never decides; then cheaper, faster, name.
    return (-round(candidate.utility / TIE_EPSILON), candidate.estimated_cost_usd, candidate.predicted_latency_ms,
            candidate.pair.name)


def _fallback_key(candidate: CandidateScore) -> tuple:
    return (-candidate.expected_accuracy, candidate.predicted_latency_ms, candidate.pair.name)


def _can_serve(candidate: CandidateScore) -> bool:
    """Healthy, circuit closed and the context fits: the fallback pool."""
    return not any(candidate.rejected_for(reason) for reason in (
        RejectionReason.UNHEALTHY, RejectionReason.CIRCUIT_OPEN, RejectionReason.CONTEXT_LENGTH))


def decide(request: RoutingRequest, query: Classification, profiles: ProfileDocument,
           workers: dict[tuple[str, Quantization], WorkerView], config: PolicyConfig) -> Decision:
    """Routes one request. A pair with no entry in `workers` is treated as unhealthy.

    Returns:
        The `Decision` (never raises for a routable request; REJECTED says why none can serve).
    """
    unknown = WorkerView(healthy=False)
    scored = [_score(pair, workers.get(pair.key, unknown), request, query, config) for pair in profiles.pairs]
    max_cost = max(candidate.estimated_cost_usd for candidate in scored)
    weights = config.weights[request.mode]
    scored = [
        replace(candidate, utility=utility(candidate, weights, request.budget_ms, max_cost)) if candidate.eligible
        else candidate
        for candidate in scored
    ]
    eligible = sorted((c for c in scored if c.eligible), key=_rank_key)
    rejected = sorted((c for c in scored if not c.eligible), key=_fallback_key)
    candidates = (*eligible, *rejected)
    common = {"candidates": candidates, "profiles_version": profiles.version, "budget_ms": request.budget_ms}
    if eligible:
        best = eligible[0]
        reason = (f"{best.pair.name}: cheapest (estimated ${best.estimated_cost_usd:.8f}) of "
                  f"{len(eligible)} pair(s) meeting every constraint" if request.mode is RoutingMode.CHEAPEST else
                  f"{best.pair.name}: highest {request.mode.value} utility {best.utility:.3f} of "
                  f"{len(eligible)} pair(s) meeting every constraint")
        return Decision(outcome=RouteOutcome.ROUTED, chosen=best, reason=reason, retry_order=tuple(eligible[1:]),
                        rejected_status=None, **common)
    servable = [c for c in rejected if _can_serve(c)]
    if servable:
        best = servable[0]
        reason = (f"fallback: no pair meets every constraint; {best.pair.name} is the most accurate healthy pair "
                  f"({best.expected_accuracy:.3f} on {query.tier.value})")
        return Decision(outcome=RouteOutcome.FALLBACK, chosen=best, reason=reason, retry_order=tuple(servable[1:]),
                        rejected_status=None, **common)
    healthy = [c for c in rejected if not c.rejected_for(RejectionReason.UNHEALTHY)
               and not c.rejected_for(RejectionReason.CIRCUIT_OPEN)]
    if healthy:
        return Decision(outcome=RouteOutcome.REJECTED, chosen=None,
                        reason="the prompt exceeds the context length of every healthy pair", retry_order=(),
                        rejected_status=RejectedStatus.CONTEXT_TOO_LONG, **common)
    return Decision(outcome=RouteOutcome.REJECTED, chosen=None,
                    reason="no healthy pair (every worker is down or its circuit is open)", retry_order=(),
                    rejected_status=RejectedStatus.NO_HEALTHY_PAIR, **common)
