"""Batch consumer process: `create_consumer` wires the store, the router channel and a health-only gRPC server;
`serve` runs it until SIGTERM, then drains (in-flight requests get `shutdown_grace_s`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from quantmesh.router.v1 import router_pb2_grpc
from services.common import tls, tracing
from services.common.logging import configure_logging
from services.common.server import GrpcServer, build_server, run_until_signal
from services.common.telemetry import process_telemetry
from services.router.batch.consumer import BatchConsumer
from services.router.batch.settings import BatchConsumerSettings
from services.router.batch.store import BatchStore

log = structlog.get_logger(__name__)


async def create_consumer(settings: BatchConsumerSettings) -> tuple[GrpcServer, Callable[[], Awaitable[None]]]:
    """Starts the consumer (after its group exists: it waits for Redis) and its health server (SERVING once started).

    Returns:
        (health server, close): `close` drains the consumer and closes its connections.
    """
    # The socket timeout must outlast a blocking XREADGROUP; no client-side retries (the consumer retries itself).
    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=settings.redis_timeout_s,
                                     socket_timeout=settings.read_block_ms / 1000.0 + settings.redis_timeout_s,
                                     retry=Retry(NoBackoff(), 0))
    channel = tls.open_channel(settings.router_address, settings, interceptors=tracing.client_interceptors())
    metadata = (("authorization", f"Bearer {settings.router_token}"),) if settings.router_token else ()
    consumer = BatchConsumer(BatchStore(client, settings.prefix), router_pb2_grpc.RouterServiceStub(channel),
                             settings, metadata)
    health = await build_server(settings, (), lambda server: None)
    await health.start()
    await consumer.start()
    await health.set_serving(True)

    async def close() -> None:
        await consumer.stop(settings.shutdown_grace_s)
        await channel.close()
        await client.aclose()

    return health, close


async def serve(settings: BatchConsumerSettings) -> None:
    """Runs one batch consumer until SIGTERM/SIGINT."""
    configure_logging(settings.log_level, json=settings.log_json)
    with process_telemetry(settings, "quantmesh-batch-consumer"):
        health, close = await create_consumer(settings)
        log.info("batch_consumer_serving", port=health.port, router=settings.router_address)
        await run_until_signal(health, settings, on_shutdown=close)
