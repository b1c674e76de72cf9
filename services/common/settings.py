"""Settings shared by every quantmesh server.

Each service subclasses `ServerSettings` with its own env prefix (`QUANTMESH_<SERVICE>_`), for example::

    class WorkerSettings(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="QUANTMESH_WORKER_", frozen=True, extra="forbid")

Settings are frozen: a running server never changes them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Listening address, transport limits and shutdown behaviour of one gRPC server."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 or [::] to listen on every interface.")
    port: int = Field(0, ge=0, le=65535, description="Port to bind; 0 picks a free port (reported at start-up).")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request or response message, in bytes (gRPC default 4 MiB)."
    )
    keepalive_time_ms: int = Field(30_000, ge=1_000, description="Interval between keepalive pings, in ms.")
    keepalive_timeout_ms: int = Field(10_000, ge=100, description="Wait for a keepalive ack before closing, in ms.")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM, how long in-flight RPCs may run before they are cancelled, in s."
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(True, description="JSON log lines (for collectors); false for a console renderer.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the Prometheus /metrics HTTP endpoint (on `host`); None or 0: none. "
        "deploy/ uses 9101 (router), 9102 (classifier), 9103 (worker), 9104 (batch consumer)."
    )
    # Transport security (services.common.tls): all unset means plaintext, the local demo's default.
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain the server presents (TLS on with tls_key_file); the router also "
        "presents it as its client certificate to the classifier and workers."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; set: callers must present a certificate it signed (mutual TLS)."
    )
    tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle verifying the servers this service calls; set: those channels use TLS."
    )

    @model_validator(mode="after")
    def _check_tls(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return self
