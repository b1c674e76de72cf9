"""The InferenceWorker's Prometheus metrics (names, types and labels: deploy/README.md "Metrics").

Every series carries the pair the worker serves (`model` = served model name, `quantization`), bound once at
start-up, so a request never resolves a label:
- gauges `quantmesh_worker_running_requests`, `..._waiting_requests` (KEDA scales on it) and
  `..._kv_cache_usage_ratio`: the engine's own load snapshot (vLLM's scheduler stats), copied by `export_load` on
  the event loop at every change and at least once a second;
- histograms `quantmesh_worker_ttft_seconds` (request received -> first token out of the engine),
  `..._e2e_latency_seconds` (received -> last token, completed requests) and `..._itl_seconds` (inter-token
  latency: one observation per engine delta after the first, the gap since the previous delta divided by the
  delta's tokens; as vLLM's `inter_token_latency_seconds`, one per engine step when the stream keeps up);
- counters `quantmesh_worker_prompt_tokens_total` (prompts prefilled: counted at the first token) and
  `..._generation_tokens_total` (counted as they come out of the engine, aborted requests included);
- `quantmesh_worker_aborts_total{reason}`: engine requests aborted before they finished: `cancelled` (the caller
  cancelled), `deadline` (the caller's deadline passed) or `error` (engine failure, stream cut short).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import ITL_BUCKETS_S, LATENCY_BUCKETS_S
from services.worker.engine import Engine, EngineLoad

_PAIR = ["model", "quantization"]
RUNNING_REQUESTS = Gauge("quantmesh_worker_running_requests", "Requests the engine is running.", _PAIR)
WAITING_REQUESTS = Gauge("quantmesh_worker_waiting_requests", "Requests waiting in the engine's queue.", _PAIR)
KV_CACHE_USAGE = Gauge("quantmesh_worker_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use, 0 to 1.", _PAIR)
TTFT = Histogram("quantmesh_worker_ttft_seconds", "Time to first token in the worker.", _PAIR,
                 buckets=LATENCY_BUCKETS_S)
ITL = Histogram("quantmesh_worker_itl_seconds", "Inter-token latency.", _PAIR, buckets=ITL_BUCKETS_S)
E2E_LATENCY = Histogram("quantmesh_worker_e2e_latency_seconds", "Request latency in the worker.", _PAIR,
                        buckets=LATENCY_BUCKETS_S)
PROMPT_TOKENS = Counter("quantmesh_worker_prompt_tokens_total", "Prompt tokens processed.", _PAIR)
GENERATION_TOKENS = Counter("quantmesh_worker_generation_tokens_total", "Tokens generated.", _PAIR)
ABORTS = Counter("quantmesh_worker_aborts_total", "Aborted engine requests by reason.", [*_PAIR, "reason"])

LOAD_EXPORT_MAX_INTERVAL_S = 1.0


class AbortReason(StrEnum):
    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    ERROR = "error"


def abort_reason(interrupted_by: BaseException | None, time_remaining_s: float | None) -> AbortReason:
    """Why an unfinished engine request was aborted.

    Args:
        interrupted_by: The exception that ended the handler early (None: the stream ended short on its own).
        time_remaining_s: The RPC's `context.time_remaining()` (None: no deadline).

    gRPC ends a handler whose caller cancelled, or whose deadline passed, by cancelling its task (CancelledError)
    or closing its response generator (GeneratorExit); the deadline is the one with no time left.
    """
    if isinstance(interrupted_by, (asyncio.CancelledError, GeneratorExit)):
        return AbortReason.DEADLINE if time_remaining_s is not None and time_remaining_s <= 0 else AbortReason.CANCELLED
    return AbortReason.ERROR


class RequestRecord:
    """The metrics of one Generate; every method is a few bound-child operations."""

    __slots__ = ("_last_token_at", "_metrics", "_prompt_tokens", "_received_at")

    def __init__(self, metrics: WorkerMetrics, received_at: float, prompt_tokens: int) -> None:
        self._metrics = metrics
        self._received_at = received_at
        self._prompt_tokens = prompt_tokens
        self._last_token_at: float | None = None

    def tokens(self, count: int, at: float) -> None:
        """`count` (> 0) tokens came out of the engine at monotonic time `at`."""
        metrics = self._metrics
        if self._last_token_at is None:
            metrics.ttft.observe(at - self._received_at)
            metrics.prompt_tokens.inc(self._prompt_tokens)
        else:
            metrics.itl.observe((at - self._last_token_at) / count)
        metrics.generation_tokens.inc(count)
        self._last_token_at = at

    def completed(self, finished_at: float) -> None:
        self._metrics.e2e_latency.observe(finished_at - self._received_at)

    def aborted(self, reason: AbortReason) -> None:
        self._metrics.aborts[reason].inc()


class WorkerMetrics:
    """The children of the pair this worker serves (bound once; every abort reason exported at 0)."""

    def __init__(self, served_model_name: str, quantization: str) -> None:
        labels = (served_model_name, quantization)
        self.running_requests = RUNNING_REQUESTS.labels(*labels)
        self.waiting_requests = WAITING_REQUESTS.labels(*labels)
        self.kv_cache_usage = KV_CACHE_USAGE.labels(*labels)
        self.ttft = TTFT.labels(*labels)
        self.itl = ITL.labels(*labels)
        self.e2e_latency = E2E_LATENCY.labels(*labels)
        self.prompt_tokens = PROMPT_TOKENS.labels(*labels)
        self.generation_tokens = GENERATION_TOKENS.labels(*labels)
        self.aborts = {reason: ABORTS.labels(*labels, reason.value) for reason in AbortReason}

    def request(self, received_at: float, prompt_tokens: int) -> RequestRecord:
        """The record of a Generate received at monotonic time `received_at` with `prompt_tokens` prompt tokens."""
        return RequestRecord(self, received_at, prompt_tokens)

    def record_load(self, load: EngineLoad) -> None:
        self.running_requests.set(load.running_requests)
        self.waiting_requests.set(load.waiting_requests)
        self.kv_cache_usage.set(load.kv_cache_usage_fraction)

    async def export_load(self, engine: Engine) -> None:
        """Copies the engine's load into the gauges at every change (at least every second), until cancelled."""
        while True:
            load = engine.load()
            self.record_load(load)
            await engine.wait_for_load_change(load.version, LOAD_EXPORT_MAX_INTERVAL_S)
