"""Per-RPC structlog context: every log line of a request carries its `request_id`, `trace_id` and `rpc`.

`bind_log_context`, run before every handler (a `method_wrapping.CallCheck`), clears the context variables and binds:
- `rpc`: the full method name;
- `request_id`: the `x-request-id` metadata (the router sends it to workers), else the request's own `request_id`
  field (unary requests), when either is set; handlers may bind a better one later (the router generates one);
- `trace_id`: the current span's trace id (tracing on: the server span opened by the outer tracing interceptor),
  else the caller's `traceparent` (tracing off here, but the caller's trace still names the request).

Prompt text is never bound here (nor logged by the services) unless a service's own setting asks for it.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog
from opentelemetry import propagate, trace

from services.common.tracing import current_trace_id


def _incoming_trace_id(metadata: dict[str, str]) -> str | None:
    if "traceparent" not in metadata:
        return None
    context = trace.get_current_span(propagate.extract(metadata)).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def bind_log_context(method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
    """Binds the log context of one RPC (module docstring). Each RPC runs in its own asyncio task with its own copy of
    the context variables, so what one RPC binds never shows in another's lines."""
    metadata = {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
    fields: dict[str, str] = {"rpc": method}
    request_id = metadata.get("x-request-id") or getattr(request, "request_id", None)
    if isinstance(request_id, str) and request_id:
        fields["request_id"] = request_id
    trace_id = current_trace_id() or _incoming_trace_id(metadata)
    if trace_id is not None:
        fields["trace_id"] = trace_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
