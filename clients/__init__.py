"""quantmesh clients: the typed Python SDK (`clients.sdk`) and the `quantmesh` CLI (`clients.cli`).

The SDK's public names are re-exported here::

    from clients import QuantmeshClient, Requirements
"""

from clients.batches import Batch, BatchRequest, BatchResult
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
    NotFoundError,
    PermissionDeniedError,
    QuantmeshError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from core.vocabulary import BatchStatus, ChatRole, Quantization, RoutingMode

__all__ = [
    "AbortedError", "AsyncQuantmeshClient", "Batch", "BatchRequest", "BatchResult", "BatchStatus", "CancelledError", "ChatMessage", "ChatRole", "Completion",
    "DeadlineExceededError", "FailedPreconditionError", "GenerationSummary", "InternalError", "InvalidArgumentError",
    "NotFoundError", "Pair", "PermissionDeniedError", "Quantization", "QuantmeshClient", "QuantmeshError", "Requirements",
    "ResourceExhaustedError", "RouteDecision", "RoutingMode", "Sampling", "StaticFallback", "TlsOptions", "TokenChunk",
    "UnauthenticatedError", "UnavailableError",
]
