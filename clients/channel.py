"""The SDK's gRPC channel configuration: retry policies in the service config, message limits, keepalive, and
the deadlines of Route and Generate calls.

Retries are declared in the gRPC service config of the channel (`service_config()`), not hand-written:
- Route and the admin reads (GetProfiles, ValidateProfiles) retry on UNAVAILABLE only, with exponential backoff.
- Generate retries on UNAVAILABLE only as long as nothing was received: gRPC commits a call (no more retries) as
  soon as the server's response headers arrive, and the router sends them with the decision, its first message.
  So a Generate is never retried after its decision or a token chunk, and tokens are never duplicated or dropped;
  retrying another pair after a worker failure is the router's job (before the first token only).
- PublishProfiles (a write) is never retried by the channel.
RESOURCE_EXHAUSTED is not retried automatically: `ResourceExhaustedError.retry_after_s` carries the server's hint.
"""

from __future__ import annotations

import json
from typing import Any

from clients.messages import Requirements
from quantmesh.router.v1 import router_pb2

ROUTER_SERVICE = "quantmesh.router.v1.RouterService"
ADMIN_SERVICE = "quantmesh.router.v1.RouterAdminService"
DEFAULT_RPC_TIMEOUT_S = 10.0
"""Deadline of `route` and the admin RPCs, in s, when the caller gives none."""
MAX_RECONNECT_BACKOFF_MS = 2_000
"""Longest wait between reconnection attempts to a router that went away, in ms (gRPC's default is 120 s): with a
static fallback, requests go back to the router within this long of its return."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message the SDK sends or accepts, in bytes (profile documents can exceed gRPC's 4 MiB default)."""


def service_config(max_attempts: int = 3) -> dict[str, Any]:
    """The gRPC service config the SDK's channels use (retry policies per method; see the module docstring).

    Args:
        max_attempts: Attempts per call including the first, 1-5 (gRPC caps it at 5); 1 disables retries.

    Returns:
        A dict in the gRPC service config JSON shape (https://github.com/grpc/grpc/blob/master/doc/service_config.md).

    Raises:
        ValueError: `max_attempts` is outside 1-5.
    """
    if not 1 <= max_attempts <= 5:
        raise ValueError(f"max_attempts must be in 1-5, got {max_attempts}")
    if max_attempts == 1:
        return {"methodConfig": []}
    retry = {
        "maxAttempts": max_attempts,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    reads = [
        {"service": ROUTER_SERVICE, "method": "Route"},
        {"service": ADMIN_SERVICE, "method": "GetProfiles"},
        {"service": ADMIN_SERVICE, "method": "ValidateProfiles"},
    ]
    return {
        "methodConfig": [
            {"name": reads, "retryPolicy": retry},
            # Committed once the decision (first message) arrives: never retried after it.
            {"name": [{"service": ROUTER_SERVICE, "method": "Generate"}], "retryPolicy": retry},
        ]
    }


def channel_options(max_attempts: int = 3) -> list[tuple[str, Any]]:
    """Channel arguments: the service config with its retry policies, message limits, keepalive and reconnection
    backoff."""
    return [
        ("grpc.service_config", json.dumps(service_config(max_attempts))),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]


def generate_timeout_s(requirements: Requirements, timeout_s: float | None) -> float:
    """The deadline of a Generate call, in s: the latency budget, or `timeout_s` when that is smaller."""
    budget_s = requirements.latency_budget_ms / 1000.0
    return budget_s if timeout_s is None else min(budget_s, timeout_s)


def route_timeout_s(request: router_pb2.RouteRequest, timeout_s: float | None, rpc_timeout_s: float) -> float:
    """The deadline of a Route call, in s: `timeout_s` when given, else the larger of `rpc_timeout_s` and the
    budget plus 1 s (a dry run should see the whole budget: the router caps the budget at the call's deadline)."""
    if timeout_s is not None:
        return timeout_s
    return max(rpc_timeout_s, request.requirements.latency_budget_ms / 1000.0 + 1.0)
