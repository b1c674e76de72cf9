"""What every quantmesh server runs around each RPC handler, wrapped once at registration rather than on every call.

`wrap_method_handler(handler, method, checks)` gives the handler whose behaviour runs each `CallCheck` (log context,
authorisation) and then the servicer's code, and maps any exception of either to its gRPC status: a
`QuantmeshError` subclass to its code and message, anything else to INTERNAL (logged with its traceback).
`asyncio.CancelledError` (caller cancelled, deadline passed) and gRPC's own abort pass through. Handlers never call
`context.abort` for domain errors: they raise, and this is the one place that decides the status.

`WrappingRegistrar` stands in for the server while servicers register (`add_*Servicer_to_server`), so that each
method handler is wrapped once at start-up. grpc-aio server interceptors would rebuild the handler on every call, run
an async chain per interceptor, and put a generator layer per interceptor under every streamed message: about 0.15
to 0.2 ms more per routed call on the 2-core benchmark machine (README.md, "router_overhead").
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import structlog

from core.errors import QuantmeshError

log = structlog.get_logger(__name__)

CallCheck = Callable[[str, Any, grpc.aio.ServicerContext], None]
"""Runs before a handler: (full method name, request or None when the request side streams, context). An exception
ends the RPC with the status it stands for."""


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    """Ends the RPC with the status `exc` stands for; INTERNAL (logged with traceback) for anything unexpected."""
    if isinstance(exc, QuantmeshError):
        if exc.trailing_metadata:
            context.set_trailing_metadata(exc.trailing_metadata)
        await context.abort(exc.code, exc.message)
    log.exception("unhandled_exception", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}")


def wrap_method_handler(handler: grpc.RpcMethodHandler, method: str,
                        checks: Sequence[CallCheck]) -> grpc.RpcMethodHandler:
    """The same RPC (`method`, for example "/quantmesh.router.v1.RouterService/Generate") with `checks` run first and
    every exception mapped to a status (module docstring), in one wrapper.

    A response-streaming behaviour is either an async generator function (its wrapper is one too: one layer per
    streamed message) or a coroutine function that writes with `context.write()` (its wrapper is a coroutine
    function: gRPC picks the streaming API from the function's kind).
    """

    def unary(behavior: Callable[..., Any], request_streaming: bool) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                for check in checks:
                    check(method, None if request_streaming else request, context)
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
                await _abort(context, exc, method)

        return wrapper

    def stream(behavior: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):  # writes with `context.write()` and returns None
            return unary(behavior, request_streaming)

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                for check in checks:
                    check(method, None if request_streaming else request, context)
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
                await _abort(context, exc, method)

        return wrapper

    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, False), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream, False), **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary, True), **codec)
    return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream, True), **codec)


class _WrappedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped the first time each method is called, then reused."""

    def __init__(self, inner: grpc.GenericRpcHandler, checks: Sequence[CallCheck]) -> None:
        self._inner = inner
        self._checks = checks
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = wrap_method_handler(handler, method, self._checks)
        return wrapped


class WrappingRegistrar:
    """What `add_*Servicer_to_server` is given instead of the server: it registers every handler on `server` wrapped
    with `checks` (`wrap_method_handler`).

    Args:
        server: The server the handlers go to.
        checks: Run in order before every handler registered through this object.
    """

    def __init__(self, server: grpc.aio.Server, checks: Sequence[CallCheck]) -> None:
        self._server = server
        self._checks = tuple(checks)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(handler, self._checks) for handler in generic_rpc_handlers)
        )

    def add_registered_method_handlers(self, service_name: str,
                                       method_handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(service_name, {
            name: wrap_method_handler(handler, f"/{service_name}/{name}", self._checks)
            for name, handler in method_handlers.items()
        })
