"""Settings of the router (`QUANTMESH_ROUTER_*` environment variables), frozen once the server starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from core.vocabulary import RoutingMode
from services.common.settings import ServerSettings
from services.router.batch.settings import DEFAULT_LATENCY_BUDGET_MS, BatchLimits
from services.router.batch.store import DEFAULT_PREFIX as BATCH_PREFIX
from services.router.circuit_breaker import CircuitBreakerConfig
from services.router.deadlines import RetryPolicy
from services.router.policy import CHEAPEST_WEIGHTS, DEFAULT_WEIGHTS, PolicyConfig, UtilityWeights


class RouterSettings(ServerSettings):
    """Where the router finds its classifier and profiles, and how it routes, retries and protects workers."""

    model_config = SettingsConfigDict(env_prefix="QUANTMESH_ROUTER_", frozen=True, extra="forbid")

    classifier_address: str | None = Field(
        None, description="host:port of the ClassifierService; unset, and no classifier_artifact_dir: degraded "
        "rule-based classification only."
    )
    classifier_artifact_dir: Path | None = Field(
        None, description="Classify in the router's process with this classifier artifact (a directory written by "
        "`python -m tools.classifier_training.train`) instead of calling classifier_address: one network round trip and "
        "one process wake-up fewer per request. Mutually exclusive with classifier_address.",
    )
    classifier_timeout_ms: float = Field(
        50.0, gt=0, description="Longest wait for a classification, ms; past it the degraded rules answer (flagged)."
    )
    redis_url: str | None = Field(None, description="Profile store, e.g. redis://127.0.0.1:6379/0; unset: static.")
    profiles_prefix: str = Field("quantmesh:profiles", description="Redis key prefix of the profile document.")
    static_profiles_path: Path | None = Field(
        None, description="Profile document (JSON) seeding a router before Redis answers, or without Redis."
    )
    worker_deadline_margin_ms: float = Field(
        10.0, ge=0, description="Subtracted from what is left of the budget when calling a worker, ms."
    )
    load_watch_interval_ms: int = Field(200, ge=50, le=60_000, description="WatchLoad report period asked for, ms.")
    load_stale_after_ms: float = Field(
        1500.0, gt=0, description="A worker without a load report for this long is unhealthy, ms."
    )
    replica_resolve_interval_s: float = Field(
        5.0, gt=0, description="How often a pair's dns:///host:port endpoint (a headless Service: one address per "
        "worker pod) is resolved again, s.",
    )
    upstream_reconnect_backoff_max_ms: int = Field(
        1000, ge=100, le=120_000,
        description="Longest wait between reconnect attempts of the worker and classifier channels, ms (gRPC's own "
        "default grows to 120 s, so a worker that starts after the router would stay unroutable for minutes).",
    )
    fp8_max_numeric_token_share: float = Field(
        0.30, ge=0, le=1, description="No FP8 pair for prompts with a larger numeric-token share (docs/architecture.md)."
    )
    kv_cache_saturation_fraction: float = Field(0.95, gt=0, le=1, description="KV-cache use counted as full.")
    interactive_weights: tuple[float, float, float] = Field(
        (DEFAULT_WEIGHTS[RoutingMode.INTERACTIVE].accuracy, DEFAULT_WEIGHTS[RoutingMode.INTERACTIVE].latency,
         DEFAULT_WEIGHTS[RoutingMode.INTERACTIVE].cost),
        description="Utility weights (accuracy, latency, cost) in interactive mode, summing to 1; JSON list.",
    )
    batch_weights: tuple[float, float, float] = Field(
        (DEFAULT_WEIGHTS[RoutingMode.BATCH].accuracy, DEFAULT_WEIGHTS[RoutingMode.BATCH].latency,
         DEFAULT_WEIGHTS[RoutingMode.BATCH].cost),
        description="Utility weights (accuracy, latency, cost) in batch mode, summing to 1; JSON list.",
    )
    retry_max_attempts: int = Field(3, ge=1, description="Worker calls per request, the first included.")
    retry_base_backoff_ms: float = Field(5.0, ge=0, description="Backoff cap of the first retry, ms (doubles).")
    retry_max_backoff_ms: float = Field(100.0, ge=0, description="Largest backoff cap, ms.")
    retry_min_attempt_ms: float = Field(20.0, ge=0, description="Retry only if this much budget remains, ms.")
    breaker_failure_threshold: int = Field(5, ge=1, description="Failures in the window that open a circuit.")
    breaker_window_s: float = Field(10.0, gt=0, description="Sliding failure window, s.")
    breaker_open_duration_s: float = Field(5.0, gt=0, description="Time a circuit stays open before a probe, s.")
    admission_control: bool = Field(
        True, description="Refuse Generate with RESOURCE_EXHAUSTED (and retry-after-ms) when live load would make "
        "every servable pair miss the budget that an idle pair meets (services.router.admission)."
    )
    max_prompt_bytes: int = Field(
        64 * 1024, ge=1, description="Largest prompt (or rendered chat) in UTF-8 bytes; larger is INVALID_ARGUMENT."
    )
    record_prompt_text: bool = Field(
        False, description="Put the prompt text in the route_decision log line and the trace span; off: prompts "
        "are never logged or traced (they may hold personal data)."
    )
    batch_prefix: str = Field(BATCH_PREFIX, description="Redis key prefix of the batch store (the consumers').")
    batch_max_items: int = Field(10_000, ge=1, description="Most requests in one CreateBatch.")
    batch_default_latency_budget_ms: int = Field(
        DEFAULT_LATENCY_BUDGET_MS, ge=1, description="Per-request budget of a batch that sets none, ms (the seed's "
        "async SLA, \"< 2 s\").",
    )
    batch_max_latency_budget_ms: int = Field(
        60_000, ge=1, description="Largest per-request batch budget, ms; keep it below the consumers' "
        "visibility_timeout_ms (120 s by default), so a request still generating is not reclaimed.",
    )
    batch_results_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="How long a finished batch is kept, s.")
    batch_max_age_s: int = Field(
        24 * 3600, ge=1, description="How long an unfinished batch is kept (its completion window, OpenAI's 24 h), s."
    )
    auth_callers_file: Path | None = Field(
        None, description="Callers file (services.common.auth): who may call RouterService and BatchService "
        "('route') and RouterAdminService ('admin'); unset: no caller authentication (the local demo)."
    )

    @model_validator(mode="after")
    def _check_weights(self) -> RouterSettings:
        self.policy_config()  # raises ValueError (a settings error naming the weights) when they do not sum to 1
        return self

    @model_validator(mode="after")
    def _check_one_classifier(self) -> RouterSettings:
        if self.classifier_address and self.classifier_artifact_dir is not None:
            raise ValueError("set classifier_address (the ClassifierService) or classifier_artifact_dir (the model "
                             "in process), not both")
        return self

    def policy_config(self) -> PolicyConfig:
        return PolicyConfig(
            weights={RoutingMode.CHEAPEST: CHEAPEST_WEIGHTS,
                     RoutingMode.INTERACTIVE: UtilityWeights(*self.interactive_weights),
                     RoutingMode.BATCH: UtilityWeights(*self.batch_weights)},
            fp8_max_numeric_token_share=self.fp8_max_numeric_token_share,
            kv_cache_saturation_fraction=self.kv_cache_saturation_fraction,
        )

    def batch_limits(self) -> BatchLimits:
        return BatchLimits(max_items=self.batch_max_items,
                           default_latency_budget_ms=self.batch_default_latency_budget_ms,
                           max_latency_budget_ms=self.batch_max_latency_budget_ms,
                           results_ttl_s=self.batch_results_ttl_s, max_age_s=self.batch_max_age_s)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.retry_max_attempts, base_backoff_ms=self.retry_base_backoff_ms,
                           max_backoff_ms=self.retry_max_backoff_ms, min_attempt_ms=self.retry_min_attempt_ms)

    def breaker_config(self) -> CircuitBreakerConfig:
        return CircuitBreakerConfig(failure_threshold=self.breaker_failure_threshold, window_s=self.breaker_window_s,
                                    open_duration_s=self.breaker_open_duration_s)
