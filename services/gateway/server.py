"""Runs the gateway's app on uvicorn (uvloop and httptools when installed) until SIGTERM or SIGINT; in-flight
requests get `shutdown_grace_s` to finish, as on the gRPC services."""

from __future__ import annotations

import ssl

import uvicorn

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
            ssl_ca_certs=settings.tls_client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca_file else ssl.CERT_NONE,
        )
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()
