"""The gateway's one error-mapping layer: every failure becomes an HTTP status and OpenAI's error object.

gRPC status -> HTTP status, following the gRPC-to-HTTP table of Google's API design guide
(https://cloud.google.com/apis/design/errors#handling_errors) and OpenAI's error types:

| gRPC | HTTP | OpenAI `type` |
|---|---|---|
| INVALID_ARGUMENT, OUT_OF_RANGE | 400 | invalid_request_error |
| UNAUTHENTICATED | 401 | authentication_error |
| PERMISSION_DENIED | 403 | permission_error |
| NOT_FOUND | 404 | not_found_error |
| ABORTED | 409 | conflict_error |
| RESOURCE_EXHAUSTED | 429 (with `Retry-After` s and `retry-after-ms`) | rate_limit_error |
| CANCELLED | 499 (the client closed the request) | cancelled |
| UNIMPLEMENTED | 501 | not_implemented |
| INTERNAL, UNKNOWN, DATA_LOSS | 502 (the mesh failed behind the gateway) | upstream_error |
| UNAVAILABLE, FAILED_PRECONDITION | 503 | service_unavailable |
| DEADLINE_EXCEEDED | 504 | timeout |

The gateway's own bugs are 500 with the same body (`internal_error`) and a log line with the traceback: no response
is ever a bare 500.
"""

from __future__ import annotations

import math

import grpc
from fastapi.responses import JSONResponse

from core.errors import QuantmeshError, ResourceExhaustedError, from_rpc_error
from services.gateway.openai_types import ErrorBody, ErrorDetail

_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "conflict_error"),
    grpc.StatusCode.ABORTED: (409, "conflict_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "not_implemented"),
    grpc.StatusCode.INTERNAL: (502, "upstream_error"),
    grpc.StatusCode.UNKNOWN: (502, "upstream_error"),
    grpc.StatusCode.DATA_LOSS: (502, "upstream_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
    grpc.StatusCode.FAILED_PRECONDITION: (503, "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
}


class GatewayError(Exception):
    """A failure of the gateway's own (not the mesh's), with its HTTP status, for example 413 for a large body."""

    def __init__(self, status: int, error_type: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.param = status, error_type, message, param


def http_status(code: grpc.StatusCode) -> tuple[int, str]:
    """(HTTP status, OpenAI error type) of a gRPC status code (the table above)."""
    return _HTTP.get(code, (502, "upstream_error"))


def _param(message: str) -> str | None:
    """The field a quantmesh message starts with ("sampling.temperature: must be ..."), as OpenAI's `param`."""
    head, separator, _ = message.partition(": ")
    return head if separator and " " not in head and len(head) <= 128 else None


def error_body(error: QuantmeshError | grpc.RpcError) -> tuple[int, ErrorBody, dict[str, str]]:
    """(HTTP status, OpenAI error body, extra headers) of a mesh error or a failed router call."""
    if not isinstance(error, QuantmeshError):
        error = from_rpc_error(error)
    status, error_type = http_status(error.code)
    headers: dict[str, str] = {}
    if isinstance(error, ResourceExhaustedError):
        retry_after_s = error.retry_after_s if error.retry_after_s is not None else 1.0
        headers = {"retry-after": str(max(1, math.ceil(retry_after_s))),
                   "retry-after-ms": str(int(retry_after_s * 1000))}
    detail = ErrorDetail(message=error.message, type=error_type, param=_param(error.message),
                         code=error.code.name.lower())
    return status, ErrorBody(error=detail), headers


def response(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def gateway_error_response(error: GatewayError) -> JSONResponse:
    return response(error.status, ErrorBody(error=ErrorDetail(message=error.message, type=error.error_type,
                                                              param=error.param)))


def mesh_error_response(error: QuantmeshError | grpc.RpcError) -> JSONResponse:
    status, body, headers = error_body(error)
    return response(status, body, headers)
