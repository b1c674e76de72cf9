"""The server bootstrap every quantmesh service uses.

`build_server` makes a `grpc.aio` server whose handlers are wrapped with the shared call checks and status mapping
(`method_wrapping`), with the tracing interceptor when tracing is on, transport options, standard health
(`grpc.health.v1`, NOT_SERVING until the service says it is ready) and server reflection. `run_until_signal`
serves until SIGTERM or SIGINT, then drains: health NOT_SERVING, `server.stop(grace)` (new RPCs refused, in-flight
ones get the grace period), then the service's own resources are closed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from services.common import tls, tracing
from services.common.log_context import bind_log_context
from services.common.method_wrapping import CallCheck, WrappingRegistrar
from services.common.settings import ServerSettings

log = structlog.get_logger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """A `grpc.aio.Server` with its bound port and health servicer.

    Attributes:
        server: The underlying server (already bound, not started).
        port: The bound port (the real one when settings asked for port 0).
        service_names: Fully qualified names of the application services (health is reported for each and for "").
    """

    def __init__(
        self, server: grpc.aio.Server, port: int, health: health_aio.HealthServicer, service_names: Sequence[str]
    ) -> None:
        self.server = server
        self.port = port
        self.service_names = tuple(service_names)
        self._health = health

    async def set_serving(self, serving: bool) -> None:
        """Sets the health of the whole server ("") and of each application service."""
        status = _SERVING if serving else _NOT_SERVING
        for name in ("", *self.service_names):
            await self._health.set(name, status)

    async def start(self) -> None:
        """Starts accepting RPCs (health stays NOT_SERVING until `set_serving(True)`)."""
        await self.server.start()

    async def stop(self, grace_s: float | None) -> None:
        """Reports NOT_SERVING, refuses new RPCs and waits up to `grace_s` for in-flight ones (None: no grace)."""
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def build_server(
    settings: ServerSettings,
    service_names: Sequence[str],
    register: Callable[[WrappingRegistrar], None],
    checks: Sequence[CallCheck] = (),
) -> GrpcServer:
    """Builds and binds a server; `register` adds the application servicers to it (`add_*Servicer_to_server`).

    Every handler, health's included, runs `bind_log_context`, then each of `checks` (for example authorisation), then
    the servicer's code, with exceptions mapped to statuses (`method_wrapping`). Reflection registers unwrapped: it
    is open to every caller and maps its own errors.

    Returns:
        The bound, not yet started server, health NOT_SERVING for "" and every name in `service_names`.

    Raises:
        RuntimeError: the address in `settings` could not be bound.
    """
    server = grpc.aio.server(
        # Tracing is the one interceptor: its span sees the final status and is current in the handler's log context.
        interceptors=tracing.server_interceptors(),
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    registrar = WrappingRegistrar(server, (bind_log_context, *checks))
    register(registrar)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, registrar)
    reflection.enable_server_reflection(  # it tells grpc.aio from sync by the server's type: the server itself
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        port = tls.bind(server, address, settings)  # TLS / mutual TLS when the settings turn it on
    except RuntimeError as exc:
        raise RuntimeError(f"cannot bind {address}: {exc}") from exc
    grpc_server = GrpcServer(server, port, health, service_names)
    await grpc_server.set_serving(False)
    return grpc_server


async def run_until_signal(
    grpc_server: GrpcServer,
    settings: ServerSettings,
    *,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Waits for SIGTERM or SIGINT, then drains and stops the (started) server and runs `on_shutdown`."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    await stop_requested.wait()
    log.info("shutdown_started", grace_s=settings.shutdown_grace_s, services=list(grpc_server.service_names))
    await grpc_server.stop(settings.shutdown_grace_s)
    if on_shutdown is not None:
        await on_shutdown()
    log.info("shutdown_complete")
