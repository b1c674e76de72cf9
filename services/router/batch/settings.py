"""Batch settings: the router's limits on what CreateBatch accepts (`BatchLimits`, from `QUANTMESH_ROUTER_BATCH_*`)
and a batch consumer's own settings (`BatchConsumerSettings`, `QUANTMESH_BATCH_*`)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServerSettings
from services.router.batch.store import DEFAULT_PREFIX

# The seed's SLA for async generation: "< 2 s".
DEFAULT_LATENCY_BUDGET_MS = 2000


@dataclass(frozen=True)
class BatchLimits:
    """What CreateBatch accepts and how long batches are kept.

    Attributes:
        max_items: Most requests in one batch.
        default_latency_budget_ms: Per-request budget of a batch that sets none, ms.
        max_latency_budget_ms: Largest per-request budget, ms; below the consumers' visibility timeout, so that a
            request still generating is never reclaimed by another consumer.
        results_ttl_s: How long a finished batch and its results are kept, s.
        max_age_s: How long an unfinished batch is kept (its completion window), s.
    """

    max_items: int
    default_latency_budget_ms: int
    max_latency_budget_ms: int
    results_ttl_s: int
    max_age_s: int


class BatchConsumerSettings(ServerSettings):
    """Where a batch consumer reads requests (Redis) and sends them (the router), and how many it runs at once.

    Its gRPC port serves health only: SERVING once the stream's consumer group exists.
    """

    model_config = SettingsConfigDict(env_prefix="QUANTMESH_BATCH_", frozen=True, extra="forbid")

    redis_url: str = Field(..., description="The batch store, e.g. redis://127.0.0.1:6379/0 (the router's).")
    router_address: str = Field(..., description="host:port of the RouterService that routes each request.")
    router_token: str | None = Field(None, description="Bearer token for a router with caller auth ('route').")
    prefix: str = Field(DEFAULT_PREFIX, description="Redis key prefix of the batch store (the router's).")
    consumer_name: str | None = Field(
        None, description="This consumer's name in the group, unique per process; unset: <hostname>-<pid>."
    )
    concurrency: int = Field(8, ge=1, le=1024, description="Requests this consumer runs at once.")
    read_block_ms: int = Field(1000, ge=10, le=60_000, description="Longest wait of one XREADGROUP, ms.")
    visibility_timeout_ms: int = Field(
        120_000, ge=100, description="An entry delivered but not acknowledged for this long is reclaimed by another "
        "consumer (XAUTOCLAIM), ms: its consumer died. Keep it above the router's batch_max_latency_budget_ms.",
    )
    reclaim_interval_ms: int = Field(1000, ge=10, description="How often this consumer looks for reclaimable entries, ms.")
    max_attempts: int = Field(
        5, ge=1, le=100, description="Attempts at one request, across consumers and transient errors (UNAVAILABLE, "
        "RESOURCE_EXHAUSTED); the last error is stored as its result.",
    )
    retry_backoff_ms: float = Field(200.0, ge=0, description="Wait before the first in-place retry, ms (doubles).")
    retry_max_backoff_ms: float = Field(5000.0, ge=0, description="Longest wait between in-place retries, ms.")
    redis_timeout_s: float = Field(5.0, gt=0, description="Socket timeout of Redis calls beyond the read's block, s.")

    def name(self) -> str:
        """The consumer's name in the group."""
        return self.consumer_name or f"{socket.gethostname()}-{os.getpid()}"

    @model_validator(mode="after")
    def _check_reclaim(self) -> BatchConsumerSettings:
        if self.reclaim_interval_ms > self.visibility_timeout_ms:
            raise ValueError("reclaim_interval_ms must not exceed visibility_timeout_ms")
        return self
