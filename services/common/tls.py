"""TLS and mutual TLS for every quantmesh server and for the channels the router opens.

Off by default (the local demo runs plaintext on 127.0.0.1); on by settings (`ServerSettings.tls_*`):
- `tls_cert_file` + `tls_key_file`: the server listens with TLS and presents this certificate chain. The router also
  presents it as its client certificate on its channels to the classifier and the workers.
- `tls_client_ca_file`: the server requires a client certificate signed by this CA (mutual TLS); a caller without
  one, or with one from another CA, fails the handshake (the caller sees UNAVAILABLE).
- `tls_ca_file`: the CA that verifies the servers this service calls; when set, its channels use TLS.
`make certs` writes a local CA and certificates for all of this (`scripts/make_certs.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from services.common.settings import ServerSettings


def _read(path: Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials, or None when TLS is off (no `tls_cert_file`).

    Raises:
        OSError: a certificate, key or CA file cannot be read.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = _read(settings.tls_client_ca_file)
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def bind(server: grpc.aio.Server, address: str, settings: ServerSettings) -> int:
    """Binds `address` with TLS when the settings turn it on, else plaintext; returns the bound port."""
    credentials = server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)


def channel_credentials(settings: ServerSettings) -> grpc.ChannelCredentials | None:
    """Credentials of this service's outgoing channels: verify servers with `tls_ca_file` and present
    `tls_cert_file` as client certificate (mutual TLS); None when `tls_ca_file` is unset (plaintext)."""
    if settings.tls_ca_file is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.tls_ca_file),
        private_key=_read(settings.tls_key_file),
        certificate_chain=_read(settings.tls_cert_file),
    )


def open_channel(address: str, settings: ServerSettings, options: Sequence[tuple[str, Any]] = (),
                 interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    """An asyncio channel to another quantmesh service, with TLS when `tls_ca_file` is set (`interceptors`: for
    example the tracing ones, `services.common.tracing.client_interceptors()`)."""
    credentials = channel_credentials(settings)
    chained = list(interceptors) or None
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=list(options), interceptors=chained)
    return grpc.aio.secure_channel(address, credentials, options=list(options), interceptors=chained)
