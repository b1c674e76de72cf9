"""The mesh's errors: one exception class per gRPC status code, raised by the services and by the SDK.

A service handler raises one (the message names the offending field and, where possible, what to change);
`services.common.method_wrapping` turns it into that status and message in one place, and any other exception is a
bug that becomes INTERNAL (logged with its traceback). The SDK turns every failed RPC back into the same class
(`from_rpc_error`), carrying the server's message and trailing metadata. Catch the base class to handle any
failure, or a subclass to handle one cause::

    try:
        decision = client.route("...", Requirements(latency_budget_ms=50))
    except ResourceExhaustedError as exc:
        time.sleep(exc.retry_after_s or 1.0)

Codes follow the gRPC status code guide (https://grpc.github.io/grpc/core/md_doc_statuscodes.html); what each means
in quantmesh is said in the protos (`protos/quantmesh/*/v1/*.proto`).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

# Trailing metadata keys that carry a retry hint, in ms: ours (core.errors examples), then gRPC's own
# retry pushback key (gRFC A6).
RETRY_AFTER_KEYS = ("retry-after-ms", "grpc-retry-pushback-ms")


class QuantmeshError(Exception):
    """A failed quantmesh call, with its gRPC status code.

    Args:
        message: What went wrong and, where possible, what to change (named after the offending field); on the
            client side the server's status message (or the transport's, for connection errors).
        code: Overrides the class's code (the SDK, for codes read off the wire).
        trailing_metadata: `(key, value)` pairs sent with the status (for example `retry-after-ms`).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, trailing_metadata: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.trailing_metadata = tuple((str(key), _as_text(value)) for key, value in trailing_metadata)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def metadata_value(self, key: str) -> str | None:
        """The first trailing metadata value under `key` (case-insensitive), or None."""
        key = key.lower()
        return next((value for k, value in self.trailing_metadata if k.lower() == key), None)


class CancelledError(QuantmeshError):
    """The call was cancelled, by this client (Ctrl-C, `cancel()`) or by the server (CANCELLED)."""

    code = grpc.StatusCode.CANCELLED


class UnknownError(QuantmeshError):
    """The server failed without a status of its own (UNKNOWN)."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(QuantmeshError):
    """The request is malformed or out of range (INVALID_ARGUMENT): fix the field the message names; retrying it
    unchanged fails again."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(QuantmeshError):
    """The latency budget or the explicit deadline ran out before the call completed (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(QuantmeshError):
    """The named resource does not exist (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND


class PermissionDeniedError(QuantmeshError):
    """Valid credentials without the permission this RPC needs (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(QuantmeshError):
    """Admission refused: the request would have waited past its deadline (RESOURCE_EXHAUSTED).

    Attributes:
        retry_after_s: The server's hint of when to retry, in s, from trailing metadata `retry-after-ms` (or gRPC's
            `grpc-retry-pushback-ms`); None when the server gave none.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retry_after_s(self) -> float | None:
        for key in RETRY_AFTER_KEYS:
            value = self.metadata_value(key)
            if value is not None:
                try:
                    return max(0.0, float(value) / 1000.0)
                except ValueError:
                    continue
        return None


class FailedPreconditionError(QuantmeshError):
    """The mesh is not in a state to serve the request, for example no profiles loaded (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(QuantmeshError):
    """A concurrency conflict, for example a stale `expected_version` on publish (ABORTED): re-read and retry."""

    code = grpc.StatusCode.ABORTED


class UnimplementedError(QuantmeshError):
    """The server does not implement this RPC (UNIMPLEMENTED): client and server versions differ."""

    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(QuantmeshError):
    """A bug in a quantmesh service (INTERNAL); the message names the failing method."""

    code = grpc.StatusCode.INTERNAL


class UnavailableError(QuantmeshError):
    """The router cannot be reached, or no healthy worker can serve now (UNAVAILABLE); retry later or elsewhere."""

    code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(QuantmeshError):
    """No valid credentials (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[QuantmeshError]] = {
    cls.code: cls
    for cls in (
        CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
        PermissionDeniedError, ResourceExhaustedError, FailedPreconditionError, AbortedError, UnimplementedError,
        InternalError, UnavailableError, UnauthenticatedError,
    )
}


def error_class(code: grpc.StatusCode) -> type[QuantmeshError]:
    """The exception class for `code` (`QuantmeshError` itself for codes without a class, such as OUT_OF_RANGE)."""
    return _BY_CODE.get(code, QuantmeshError)


def from_rpc_error(error: grpc.RpcError) -> QuantmeshError:
    """Converts a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`) into its typed exception."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(code.name)
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    cls = error_class(code)
    return cls(message, code=code, trailing_metadata=tuple(trailing or ()))


def _as_text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
