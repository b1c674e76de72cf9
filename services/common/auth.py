"""Caller authentication and per-service permissions, checked before every handler (`AuthCheck`).

A caller proves who it is with a bearer token (`authorization: Bearer <token>` metadata) or, on a mutual-TLS
connection, with its client certificate (common name or subject alternative name). The callers file lists who may
call, and with which permissions::

    {"callers": [
      {"name": "chat-frontend", "token_sha256": "<hex sha256 of the token>", "permissions": ["route"]},
      {"name": "ops", "token": "<the token itself>", "permissions": ["route", "admin"]},
      {"name": "batch-service", "mtls_identity": "batch.quantmesh.internal", "permissions": ["route"]}
    ]}

Tokens are compared as SHA-256 digests with `hmac.compare_digest` (constant time, and no length leak); prefer
`token_sha256` so that the file holds no secret. Statuses: no or unknown credentials -> UNAUTHENTICATED; known caller
without the permission the service needs -> PERMISSION_DENIED. Health and reflection stay open (orchestrators and
tools call them without credentials); any other service not listed in `required` is refused (deny by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import PermissionDeniedError, UnauthenticatedError

log = structlog.get_logger(__name__)

OPEN_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})
AUTHORIZATION_KEY = "authorization"
BEARER_PREFIX = "bearer "
# The peer certificate's names, as gRPC's auth context reports them.
_IDENTITY_PROPERTIES = ("x509_common_name", "x509_subject_alternative_name")


class Permission(StrEnum):
    """What a caller may do: `route` = RouterService (Route, Generate); `admin` = RouterAdminService."""

    ROUTE = "route"
    ADMIN = "admin"


def token_digest(token: str) -> str:
    """Hex SHA-256 of a token, the form kept in memory and accepted in the callers file (`token_sha256`)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Caller(BaseModel):
    """One authorised caller. Exactly how it proves itself: a token (given plain or as its SHA-256), an mTLS
    identity, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., min_length=1, max_length=128)
    token: str | None = Field(None, min_length=16, description="The bearer token (at least 16 characters).")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    mtls_identity: str | None = Field(None, min_length=1, description="Client certificate CN or SAN.")
    permissions: frozenset[Permission]

    @model_validator(mode="after")
    def _one_credential(self) -> Caller:
        if self.token is not None and self.token_sha256 is not None:
            raise ValueError("give token or token_sha256, not both")
        if self.token is None and self.token_sha256 is None and self.mtls_identity is None:
            raise ValueError("a caller needs a token, a token_sha256 or an mtls_identity")
        return self

    @property
    def digest(self) -> str | None:
        return token_digest(self.token) if self.token is not None else self.token_sha256


class CallerRegistry:
    """The callers that may call, looked up by token digest or mTLS identity."""

    def __init__(self, callers: Iterable[Caller]) -> None:
        self._by_digest: list[tuple[bytes, Caller]] = []
        self._by_identity: dict[str, Caller] = {}
        for caller in callers:
            if caller.digest is not None:
                self._by_digest.append((caller.digest.encode(), caller))
            if caller.mtls_identity is not None:
                self._by_identity[caller.mtls_identity] = caller

    @classmethod
    def from_file(cls, path: Path) -> CallerRegistry:
        """Reads a callers file (format in the module docstring).

        Raises:
            ValueError: the file is not valid JSON or a caller entry is invalid (the message names the field).
            OSError: the file cannot be read.
        """
        try:
            document = json.loads(Path(path).read_text())
            if not isinstance(document, dict) or set(document) != {"callers"}:
                raise ValueError('the document must be {"callers": [...]}')
            callers = [Caller.model_validate(entry) for entry in document["callers"]]
        except (ValidationError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"invalid callers file {path}: {exc}") from None
        return cls(callers)

    def by_token(self, token: str) -> Caller | None:
        """The caller holding `token`; every entry is compared (constant time per entry) whatever matches."""
        presented = token_digest(token).encode()
        found = None
        for digest, caller in self._by_digest:
            if hmac.compare_digest(digest, presented):
                found = caller
        return found

    def by_identities(self, identities: Iterable[str]) -> Caller | None:
        """The caller whose mTLS identity is among the peer certificate's names."""
        return next((self._by_identity[name] for name in identities if name in self._by_identity), None)


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, "" for a malformed one, None when absent."""
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            return text[len(BEARER_PREFIX):].strip() if text.lower().startswith(BEARER_PREFIX) else ""
    return None


def peer_identities(context: grpc.aio.ServicerContext) -> list[str]:
    """The names of the peer's verified client certificate (empty without mutual TLS)."""
    properties = context.auth_context() or {}
    return [value.decode(errors="replace") for key in _IDENTITY_PROPERTIES for value in properties.get(key, ())]


def authorize(registry: CallerRegistry, required: Permission, token: str | None, identities: list[str]) -> Caller:
    """The caller allowed to make a call needing `required`.

    A token, when present, decides (a wrong token is refused even on an mTLS connection); otherwise the mTLS
    identity does.

    Raises:
        UnauthenticatedError: no credentials, a malformed header, or an unknown token / identity.
        PermissionDeniedError: a known caller without `required`.
    """
    if token is not None:
        caller = registry.by_token(token) if token else None
        if caller is None:
            raise UnauthenticatedError("authorization: invalid bearer token")
    else:
        caller = registry.by_identities(identities)
        if caller is None:
            raise UnauthenticatedError("authorization: a bearer token or an authorised client certificate is required")
    if required not in caller.permissions:
        raise PermissionDeniedError(f"caller {caller.name!r} lacks the {required.value!r} permission")
    return caller


class AuthCheck:
    """Checks every call against `registry` before its handler runs (a `method_wrapping.CallCheck`); what it raises,
    UnauthenticatedError or PermissionDeniedError, becomes the call's status.

    Args:
        registry: Who may call.
        required: Fully qualified service name -> the permission its RPCs need. Services in `OPEN_SERVICES` need
            none; any other service is refused (UNAUTHENTICATED / PERMISSION_DENIED).
    """

    def __init__(self, registry: CallerRegistry, required: Mapping[str, Permission]) -> None:
        self._registry = registry
        self._required = dict(required)

    def __call__(self, method: str, _request: Any, context: grpc.aio.ServicerContext) -> None:
        service = method.lstrip("/").split("/", 1)[0]
        if service in OPEN_SERVICES:
            return
        required = self._required.get(service)
        if required is None:
            raise PermissionDeniedError(f"{service} is not open to callers")
        caller = authorize(self._registry, required, bearer_token(context.invocation_metadata()),
                           peer_identities(context))
        structlog.contextvars.bind_contextvars(caller=caller.name)

