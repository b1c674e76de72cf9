"""How the SDK proves itself to a router: TLS (optionally mutual) and a per-caller bearer token.

- `TlsOptions(ca_file, cert_file, key_file, server_name)`: verify the router's certificate with `ca_file`; present
  `cert_file`/`key_file` when the router requires client certificates (mutual TLS); `server_name` overrides the name
  checked in the router's certificate (for an address that is not in its SANs).
- A token is sent on every call as `authorization: Bearer <token>` metadata (by a client interceptor, so that it
  also works on a plaintext channel to a local router; over a network, use it with TLS).
Both are off by default, like the services' security settings (`services.common.tls`, `services.common.auth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings of a client channel (paths to PEM files)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials (the system's root CAs when `ca_file` is None)."""

        def read(path: Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _with_token(details: Any, token: str, details_type: type) -> Any:
    metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
    return details_type(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready,
                        *(() if details_type is grpc.aio.ClientCallDetails else (details.compression,)))


class _SyncCallDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: float | None, metadata: Any, credentials: Any, wait_for_ready: Any,
                 compression: Any) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


class _SyncTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(_with_token(client_call_details, self._token, _SyncCallDetails), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(_with_token(client_call_details, self._token, _SyncCallDetails), request)


class _AsyncUnaryTokenInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_token(client_call_details, self._token, grpc.aio.ClientCallDetails), request)


class _AsyncStreamTokenInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_token(client_call_details, self._token, grpc.aio.ClientCallDetails), request)


def aio_channel(address: str, options: Sequence[tuple[str, Any]], *, token: str | None = None,
                tls: TlsOptions | None = None) -> grpc.aio.Channel:
    """An asyncio channel to a router, with TLS and/or the token when given."""
    interceptors = [_AsyncUnaryTokenInterceptor(token), _AsyncStreamTokenInterceptor(token)] if token else None
    if tls is None:
        return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)
    return grpc.aio.secure_channel(address, tls.credentials(), options=[*options, *tls.options()],
                                   interceptors=interceptors)


def sync_channel(address: str, options: Sequence[tuple[str, Any]], *, token: str | None = None,
                 tls: TlsOptions | None = None) -> grpc.Channel:
    """A blocking channel to a router, with TLS and/or the token when given."""
    if tls is None:
        channel = grpc.insecure_channel(address, options=list(options))
    else:
        channel = grpc.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])
    return grpc.intercept_channel(channel, _SyncTokenInterceptor(token)) if token else channel
