"""Domain exceptions that carry their gRPC status code.

Handlers raise these; `services.common.method_wrapping` turns them into the status and
message the caller sees, in one place. Any other exception is a bug and becomes INTERNAL (logged with its traceback).
The codes follow the gRPC status code guide (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc


class QuantmeshError(Exception):
    """Base class: an error with a gRPC status code and a message the caller can act on.

    Args:
        message: What went wrong and, where possible, what to change (named after the offending field).
        trailing_metadata: Extra `(key, value)` pairs sent with the status (for example `retry-after-ms`).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, trailing_metadata: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.trailing_metadata = tuple(trailing_metadata)


class InvalidArgument(QuantmeshError):
    """The request is malformed or out of range (INVALID_ARGUMENT); retrying it unchanged will fail again."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(QuantmeshError):
    """The system is not in a state to serve the request, for example no profiles (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(QuantmeshError):
    """Admission refused: the request would wait past its deadline (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(QuantmeshError):
    """A dependency or engine cannot serve now; the caller may retry elsewhere or later (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(QuantmeshError):
    """The request's deadline or latency budget ran out (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Aborted(QuantmeshError):
    """A concurrency conflict, for example a stale expected version (ABORTED)."""

    code = grpc.StatusCode.ABORTED


class Unauthenticated(QuantmeshError):
    """No valid credentials (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(QuantmeshError):
    """Valid credentials without the permission this RPC needs (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED
