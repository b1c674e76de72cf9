"""quantmesh clients: the typed Python SDK (`clients.sdk`) and the `quantmesh` CLI (`clients.cli`).

The SDK's public names are re-exported here::

    from clients import QuantmeshClient, Requirements
"""

from clients.credentials import TlsOptions
from clients.fallback import StaticFallback
from clients.messages import (
    ChatMessage,
    Completion,
    GenerationSummary,
    Pair,
    Requirements,
    RouteDecision,
    Sampling,
    TokenChunk,
)
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient
from core.errors import (
    AbortedError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    PermissionDeniedError,
    QuantmeshError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from core.vocabulary import ChatRole, Quantization, RoutingMode

__all__ = [
    "AbortedError", "AsyncQuantmeshClient", "CancelledError", "ChatMessage", "ChatRole", "Completion",
    "DeadlineExceededError", "FailedPreconditionError", "GenerationSummary", "InternalError", "InvalidArgumentError",
    "Pair", "PermissionDeniedError", "Quantization", "QuantmeshClient", "QuantmeshError", "Requirements",
    "ResourceExhaustedError", "RouteDecision", "RoutingMode", "Sampling", "StaticFallback", "TlsOptions", "TokenChunk",
    "UnauthenticatedError", "UnavailableError",
]
