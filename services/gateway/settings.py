"""Settings of the gateway (`QUANTMESH_GATEWAY_*` environment variables), frozen once it starts.

It listens for HTTP on `host:port` (TLS with `tls_cert_file` / `tls_key_file`) and calls the router over gRPC
(`tls_ca_file` turns that channel's TLS on; `tls_cert_file` is then its client certificate, as for the router's own
channels). `max_message_bytes` and the keepalive settings apply to that channel.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServerSettings


class GatewaySettings(ServerSettings):
    """Where the router is, and the defaults of a request that does not say."""

    model_config = SettingsConfigDict(env_prefix="QUANTMESH_GATEWAY_", frozen=True, extra="forbid")

    metrics_port: None = Field(None, description="Not used: the gateway serves /metrics on its own port.")
    router_address: str = Field("127.0.0.1:50051", description="host:port of the RouterService.")
    default_latency_budget_ms: int = Field(
        120_000, ge=1, description="Budget of a request that sets neither `latency_budget_ms` nor "
        "`x-quantmesh-latency-budget-ms`, ms (also its gRPC deadline)."
    )
    default_max_tokens: int = Field(
        256, ge=1, description="Output tokens of a request that sets neither `max_tokens` nor `max_completion_tokens`."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body, bytes; a larger one is refused with 413 before it is "
        "read whole (the router's own prompt limit, 64 KiB by default, applies after)."
    )
    stream_keepalive_s: float = Field(
        15.0, gt=0, description="A streamed answer still waiting for its first token sends an SSE comment line "
        "(`: keep-alive`, ignored by clients) this often, s, so that proxies do not close it as idle."
    )
    readiness_timeout_ms: float = Field(
        1_000.0, gt=0, description="Deadline of the router call behind /readyz, ms."
    )
