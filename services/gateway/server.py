"""Runs the gateway's app on uvicorn (uvloop and httptools when installed) until SIGTERM or SIGINT; in-flight
requests get `shutdown_grace_s` to finish, as on the gRPC services.

uvicorn was chosen over granian by measurement: side by side on one mesh, granian's ASGI interface served fewer
requests/s (307 against 326 at 32 clients, 245 against 275 and 303 against 307 in two other runs) at the same added
latency (benchmarks/results/gateway_overhead.json, `details.servers`; benchmarks/README.md). Other ASGI
servers can run `app_from_environment` as a factory, for example
`granian --interface asgi --factory services.gateway.server:app_from_environment`.
"""

from __future__ import annotations

import ssl

import uvicorn
from fastapi import FastAPI

from services.common.logging import configure_logging
from services.common.tracing import configure_tracing, shutdown_tracing
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def serve(settings: GatewaySettings) -> None:
    """Serves on `host:port` (HTTPS with `tls_cert_file`; client certificates required with `tls_client_ca_file`)
    until a signal.

    Raises:
        OSError: the port cannot be bound.
    """
    configure_logging(settings.log_level, json=settings.log_json)
    configure_tracing("quantmesh-gateway")
    try:
        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_s),
            ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file,
            ssl_ca_certs=settings.tls_client_ca_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca_file else ssl.CERT_NONE,
        )
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()


def app_from_environment() -> FastAPI:
    """The app with `QUANTMESH_GATEWAY_*` settings, logging and tracing configured: an ASGI factory for servers
    other than uvicorn (the server's own flags then set host, port and TLS)."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, json=settings.log_json)
    configure_tracing("quantmesh-gateway")
    return create_app(settings)
