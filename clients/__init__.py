"""quantmesh clients: the typed Python SDK (`clients.sdk`) and the `quantmesh` CLI (`clients.cli`).

The SDK's public names are re-exported here::

    from clients import QuantmeshClient, Requirements
"""

from clients.errors import (
    AbortedError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    QuantmeshError,
    ResourceExhaustedError,
    UnavailableError,
)
from clients.messages import (
    ChatMessage,
    ChatRole,
    Completion,
    GenerationSummary,
    Pair,
    Quantization,
    Requirements,
    RouteDecision,
    RoutingMode,
    Sampling,
    TokenChunk,
)
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient

__all__ = [
    "AbortedError", "AsyncQuantmeshClient", "CancelledError", "ChatMessage", "ChatRole", "Completion",
    "DeadlineExceededError", "FailedPreconditionError", "GenerationSummary", "InternalError", "InvalidArgumentError",
    "Pair", "Quantization", "QuantmeshClient", "QuantmeshError", "Requirements", "ResourceExhaustedError",
    "RouteDecision", "RoutingMode", "Sampling", "TokenChunk", "UnavailableError",
]
