"""Server interceptors shared by every quantmesh service."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from services.common.errors import QuantmeshError

log = structlog.get_logger(__name__)


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    """Ends the RPC with the status `exc` stands for; INTERNAL (logged with traceback) for anything unexpected."""
    if isinstance(exc, QuantmeshError):
        if exc.trailing_metadata:
            context.set_trailing_metadata(exc.trailing_metadata)
        await context.abort(exc.code, exc.message)
    log.exception("unhandled_exception", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}")


class ExceptionToStatusInterceptor(grpc.aio.ServerInterceptor):
    """Maps `QuantmeshError` subclasses to their gRPC status and message, and any other exception to INTERNAL.

    Handlers never call `context.abort` for domain errors: they raise, and this is the one place that decides the
    status. `asyncio.CancelledError` (client cancelled, deadline passed) and gRPC's own abort pass through untouched.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        return rebuild_handler(
            handler,
            lambda behavior, _request_streaming: _status_mapped_unary(behavior, method),
            lambda behavior, _request_streaming: _status_mapped_stream(behavior, method),
        )


def rebuild_handler(
    handler: grpc.RpcMethodHandler,
    wrap_unary_response: Callable[[Callable[..., Any], bool], Callable[..., Awaitable[Any]]],
    wrap_stream_response: Callable[[Callable[..., Any], bool], Callable[..., AsyncIterator[Any]]],
) -> grpc.RpcMethodHandler:
    """The same RPC with its behaviour wrapped, for server interceptors.

    `wrap_unary_response(behavior, request_streaming)` wraps RPCs that answer once, `wrap_stream_response(...)` those
    that stream their answer; `request_streaming` tells whether the request side is a stream. A streaming behaviour
    is an async generator function (its wrapper must be one too, one layer per interceptor for every message) or a
    coroutine function that writes with `context.write()` (its wrapper must be a coroutine function: gRPC picks the
    API from the function's kind).
    """
    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary_response(handler.unary_unary, False), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream_response(handler.unary_stream, False), **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary_response(handler.stream_unary, True), **codec)
    return grpc.stream_stream_rpc_method_handler(wrap_stream_response(handler.stream_stream, True), **codec)


def run_before_behavior(
    handler: grpc.RpcMethodHandler, before: Callable[[Any, grpc.aio.ServicerContext], None]
) -> grpc.RpcMethodHandler:
    """The same RPC, calling `before(request, context)` first (request is None when the request side streams).

    An exception from `before` ends the RPC as the behaviour's own would (mapped by `ExceptionToStatusInterceptor`).
    """

    def unary(behavior: Callable[..., Any], request_streaming: bool) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            before(None if request_streaming else request, context)
            return await behavior(request, context)

        return wrapper

    def stream(behavior: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):  # writes with `context.write()` and returns None
            return unary(behavior, request_streaming)

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            before(None if request_streaming else request, context)
            async for response in behavior(request, context):
                yield response

        return wrapper

    return rebuild_handler(handler, unary, stream)


def _status_mapped_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
            await _abort(context, exc, method)

    return wrapper


def _status_mapped_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):  # writes with `context.write()` and returns None
        return _status_mapped_unary(behavior, method)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
            await _abort(context, exc, method)

    return wrapper
