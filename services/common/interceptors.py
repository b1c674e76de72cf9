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
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(handler.stream_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
            await _abort(context, exc, method)

    return wrapper


def _wrap_stream(behavior: Callable[..., Any], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            result = behavior(request, context)
            if inspect.isasyncgen(result):
                async for response in result:
                    yield response
            else:  # a handler that writes with context.write() and returns None
                await result
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place exceptions become statuses
            await _abort(context, exc, method)

    return wrapper
