"""Settings shared by every quantmesh server.

Each service subclasses `ServerSettings` with its own env prefix (`QUANTMESH_<SERVICE>_`), for example::

    class WorkerSettings(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="QUANTMESH_WORKER_", frozen=True, extra="forbid")

Settings are frozen: a running server never changes them.
"""

from __future__ import annotations

from pydantic import Field
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
