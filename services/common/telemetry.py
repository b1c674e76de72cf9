"""A service process's telemetry, set up and torn down in one place by its `serve()`.

    async def serve(settings):
        configure_logging(settings.log_level, json=settings.log_json)
        with process_telemetry(settings, "quantmesh-router"):
            ...create the server, run until SIGTERM...

Tracing (`services.common.tracing`) must be configured before the gRPC server is built (its interceptors are chosen
then); the `/metrics` endpoint (`services.common.metrics`) serves the process's default registry. Both are
per-process, so they live in `serve()`, not in `create_server()` (which tests may call many times in one process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.common.metrics import start_metrics_server
from services.common.settings import ServerSettings
from services.common.tracing import configure_tracing, shutdown_tracing


@contextmanager
def process_telemetry(settings: ServerSettings, service_name: str) -> Iterator[None]:
    """Tracing from the `OTEL_*` environment and `/metrics` on `settings.metrics_port` for the block's duration;
    on exit the batched spans are flushed to the exporter and the endpoint is closed.

    Raises:
        OSError: the metrics port cannot be bound.
        ValueError: the `OTEL_*` variables name an unsupported exporter or protocol.
    """
    configure_tracing(service_name)
    try:
        metrics_server = start_metrics_server(settings.host, settings.metrics_port)
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.close()
    finally:
        shutdown_tracing()
