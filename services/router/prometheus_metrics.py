"""The router's Prometheus metrics (names, types and labels: deploy/README.md "Metrics").

What is counted, and when (Generate only: `Route` is a dry run and moves no counter but the degraded one):
- `quantmesh_router_decisions_total{model, quantization, tier, mode, outcome}`: one per routed Generate, labelled with
  the chosen pair (outcome routed or fallback), or model="none", quantization="none" and outcome rejected when the
  router answers with an error instead (no pair can serve, or admission control refused the request).
- `quantmesh_router_cost_usd_total{kind="estimated"}`: the chosen pair's estimated cost, at routing time (before the
  call); `kind="actual"`: the serving pair's price x the tokens the worker reported, when the stream completes.
- `quantmesh_router_e2e_latency_seconds`, `..._latency_budget_ratio` (e2e / the request's effective budget) and
  `..._budget_misses_total` (ratio > 1) for completed streams, by the pair that served; a stream that ran out of
  budget (DEADLINE_EXCEEDED) also counts as a miss, its ratio recorded just over 1 (its true latency is unknown), so
  the P99-over-budget alert fires once more than 1% of a pair's requests run out of budget.
- `quantmesh_router_ttft_seconds`: request received -> first token relayed, by the pair that sent it.
- `quantmesh_router_retries_total{code}`: a worker call failed before its first token with a retryable status and
  the request will be retried (labelled with the pair that failed); `..._failovers_total`: the request then left that
  pair for another (the next call started).
- `quantmesh_router_circuit_state`: each pair's breaker (0 closed, 1 half-open, 2 open), refreshed every second on
  the event loop (the breakers are not thread-safe, and OPEN turns HALF_OPEN with time, not with an event).
- `quantmesh_router_profile_version`, `..._profile_age_seconds`: the document in use and the time since it was loaded.
- `quantmesh_router_classifier_degraded_total`: requests (Route and Generate) classified by the degraded rules.

Every pair of the profiles in use is exported from the moment they load, at 0, for every tier, mode, outcome, cost
kind and retryable code (bounded: pairs x 3 tiers x 2 modes x 2 outcomes), so rates and ratios exist before traffic.
Per request, the children of the pair are found once (one dict lookup); relaying a token touches no metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping

import grpc
from prometheus_client import Counter, Gauge, Histogram

from core.profiles import PairProfile
from core.vocabulary import ComplexityTier, Quantization, RouteOutcome, RoutingMode
from services.common.metrics import BUDGET_RATIO_BUCKETS, LATENCY_BUCKETS_S
from services.router.circuit_breaker import CircuitState
from services.router.policy import CandidateScore, Decision, WorkerView
from services.router.profile_store import LoadedProfiles

_PAIR = ["model", "quantization"]
DECISIONS = Counter("quantmesh_router_decisions_total", "Route decisions of Generate requests by outcome.",
                    [*_PAIR, "tier", "mode", "outcome"])
E2E_LATENCY = Histogram("quantmesh_router_e2e_latency_seconds", "End-to-end latency of a Generate, seen by the router.",
                        _PAIR, buckets=LATENCY_BUCKETS_S)
TTFT = Histogram("quantmesh_router_ttft_seconds", "Time to first token, seen by the router.", _PAIR,
                 buckets=LATENCY_BUCKETS_S)
BUDGET_RATIO = Histogram("quantmesh_router_latency_budget_ratio",
                         "End-to-end latency / the request's latency budget (1.0 = on budget).", [*_PAIR, "mode"],
                         buckets=BUDGET_RATIO_BUCKETS)
BUDGET_MISSES = Counter("quantmesh_router_budget_misses_total",
                        "Requests whose end-to-end latency exceeded their budget.", [*_PAIR, "mode"])
COST = Counter("quantmesh_router_cost_usd_total", "Cost in USD: estimated before the call, actual from the usage.",
               [*_PAIR, "kind"])
RETRIES = Counter("quantmesh_router_retries_total", "Worker calls retried on another pair, by gRPC status.",
                  [*_PAIR, "code"])
FAILOVERS = Counter("quantmesh_router_failovers_total",
                    "Requests that left this pair for another before the first token.", _PAIR)
CIRCUIT_STATE = Gauge("quantmesh_router_circuit_state",
                      "Circuit breaker per worker pair: 0 closed, 1 half-open, 2 open.", _PAIR)
PROFILE_VERSION = Gauge("quantmesh_router_profile_version", "Profile document version in use.")
PROFILE_AGE = Gauge("quantmesh_router_profile_age_seconds", "Seconds since the profile document in use was loaded.")
CLASSIFIER_DEGRADED = Counter("quantmesh_router_classifier_degraded_total",
                              "Requests classified by the degraded rules (classifier unavailable or too slow).")

CIRCUIT_STATE_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
RETRIED_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
REJECTED_PAIR = ("none", "none")
_JUST_OVER_BUDGET = math.nextafter(1.0, 2.0)
CIRCUIT_REFRESH_INTERVAL_S = 1.0
_MODES = tuple(mode.value for mode in RoutingMode)
_TIERS = tuple(tier.value for tier in ComplexityTier.known())


class _PairInstruments:
    """The label children of one pair, bound once."""

    def __init__(self, model: str, quantization: str) -> None:
        labels = (model, quantization)
        self.decisions = {(tier, mode, outcome.value): DECISIONS.labels(*labels, tier, mode, outcome.value)
                          for tier in _TIERS for mode in _MODES for outcome in (RouteOutcome.ROUTED, RouteOutcome.FALLBACK)}
        self.e2e_latency = E2E_LATENCY.labels(*labels)
        self.ttft = TTFT.labels(*labels)
        self.budget_ratio = {mode: BUDGET_RATIO.labels(*labels, mode) for mode in _MODES}
        self.budget_misses = {mode: BUDGET_MISSES.labels(*labels, mode) for mode in _MODES}
        self.estimated_cost = COST.labels(*labels, "estimated")
        self.actual_cost = COST.labels(*labels, "actual")
        self.retries = {code: RETRIES.labels(*labels, code.name) for code in RETRIED_CODES}
        self.failovers = FAILOVERS.labels(*labels)
        self._labels = labels

    def retry(self, code: grpc.StatusCode) -> Counter:
        child = self.retries.get(code)
        if child is None:
            child = self.retries[code] = RETRIES.labels(*self._labels, code.name)
        return child


class GenerateRecord:
    """The metrics of one Generate after its decision: each call moves the children of the pair it names."""

    __slots__ = ("_budget_s", "_metrics", "_mode")

    def __init__(self, metrics: RouterMetrics, mode: str, budget_ms: float) -> None:
        self._metrics = metrics
        self._mode = mode
        self._budget_s = budget_ms / 1000.0

    def first_token(self, candidate: CandidateScore, ttft_s: float) -> None:
        self._metrics.pair(candidate.pair).ttft.observe(ttft_s)

    def retried(self, candidate: CandidateScore, code: grpc.StatusCode) -> None:
        self._metrics.pair(candidate.pair).retry(code).inc()

    def failed_over(self, left: CandidateScore) -> None:
        self._metrics.pair(left.pair).failovers.inc()

    def completed(self, candidate: CandidateScore, e2e_s: float, actual_cost_usd: float) -> None:
        instruments = self._metrics.pair(candidate.pair)
        instruments.e2e_latency.observe(e2e_s)
        instruments.actual_cost.inc(actual_cost_usd)
        self._against_budget(instruments, e2e_s)

    def deadline_exceeded(self, candidate: CandidateScore, e2e_s: float) -> None:
        """The request ran out of budget: a miss, whatever the clock says (the worker's deadline is the budget minus
        a margin); its true latency is unknown, so its ratio is recorded just over 1."""
        self._against_budget(self._metrics.pair(candidate.pair), e2e_s, at_least=_JUST_OVER_BUDGET)

    def _against_budget(self, instruments: _PairInstruments, e2e_s: float, at_least: float = 0.0) -> None:
        if self._budget_s <= 0:
            return
        ratio = max(e2e_s / self._budget_s, at_least)
        instruments.budget_ratio[self._mode].observe(ratio)
        if ratio > 1.0:
            instruments.budget_misses[self._mode].inc()


class RouterMetrics:
    """The router's metrics: follows the profiles in use (`profiles_loaded`), records Generate requests
    (`generate`), refreshes the circuit gauges (`start`/`stop`)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], _PairInstruments] = {}
        self._rejected = {(tier, mode): DECISIONS.labels(*REJECTED_PAIR, tier, mode, RouteOutcome.REJECTED.value)
                          for tier in _TIERS for mode in _MODES}
        self._circuit_children: dict[tuple[str, Quantization], Gauge] = {}
        self._loaded_at_s: float | None = None
        self._refresher: asyncio.Task[None] | None = None
        PROFILE_AGE.set_function(self._profile_age_s)

    def _profile_age_s(self) -> float:
        loaded_at_s = self._loaded_at_s  # read once: the scrape thread runs this
        return 0.0 if loaded_at_s is None else max(0.0, time.time() - loaded_at_s)

    def pair(self, pair: PairProfile) -> _PairInstruments:
        """The children of `pair` (bound on first use; normally at profile load)."""
        key = (pair.model_id, pair.quantization.value)
        instruments = self._pairs.get(key)
        if instruments is None:
            instruments = self._pairs[key] = _PairInstruments(*key)
        return instruments

    def profiles_loaded(self, loaded: LoadedProfiles) -> None:
        """A document was swapped in: its pairs are exported at 0, its version and load time recorded."""
        wanted = {pair.key: pair for pair in loaded.document.pairs}
        for pair in wanted.values():
            self.pair(pair)
        for key in list(self._circuit_children):
            if key not in wanted:  # a pair taken out of the profiles: its breaker is gone
                CIRCUIT_STATE.remove(key[0], key[1].value)
                del self._circuit_children[key]
        for key in wanted:
            if key not in self._circuit_children:
                self._circuit_children[key] = CIRCUIT_STATE.labels(key[0], key[1].value)
        PROFILE_VERSION.set(loaded.document.version)
        self._loaded_at_s = loaded.loaded_at.timestamp()

    def classifier_degraded(self) -> None:
        CLASSIFIER_DEGRADED.inc()

    def rejected(self, tier: str, mode: str) -> None:
        """A Generate the router answered with an error instead of a pair (no pair can serve, or admission
        control refused it)."""
        self._rejected[(tier, mode)].inc()

    def routed(self, decision: Decision, tier: str, mode: str) -> GenerateRecord:
        """Counts a ROUTED or FALLBACK decision and the chosen pair's estimated cost; returns the request's record."""
        assert decision.chosen is not None
        instruments = self.pair(decision.chosen.pair)
        instruments.decisions[(tier, mode, decision.outcome.value)].inc()
        instruments.estimated_cost.inc(decision.chosen.estimated_cost_usd)
        return GenerateRecord(self, mode, decision.budget_ms)

    def refresh_circuits(self, states: Mapping[tuple[str, Quantization], WorkerView]) -> None:
        """Sets each pair's circuit gauge from the workers' states (call on the event loop)."""
        for key, child in self._circuit_children.items():
            state = states.get(key)
            if state is not None:
                child.set(CIRCUIT_STATE_VALUES[state.circuit])

    def start(self, states: Callable[[], Mapping[tuple[str, Quantization], WorkerView]]) -> None:
        """Refreshes the circuit gauges every `CIRCUIT_REFRESH_INTERVAL_S` from `states()` (must run on the loop)."""

        async def refresh_forever() -> None:
            while True:
                self.refresh_circuits(states())
                await asyncio.sleep(CIRCUIT_REFRESH_INTERVAL_S)

        self._refresher = asyncio.create_task(refresh_forever(), name="router-metrics-circuits")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
