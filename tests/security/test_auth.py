"""Unit tests of caller authentication: the callers file, token matching, bearer parsing and the status rules."""

from __future__ import annotations

import json

import grpc
import pytest

from core.errors import PermissionDeniedError, UnauthenticatedError
from services.common.auth import (
    CallerRegistry,
    Permission,
    authorize,
    bearer_token,
    token_digest,
)

APP_TOKEN = "app-token-0123456789"
OPS_TOKEN = "ops-token-0123456789"


@pytest.fixture
def registry(tmp_path) -> CallerRegistry:
    path = tmp_path / "callers.json"
    path.write_text(json.dumps({"callers": [
        {"name": "app", "token": APP_TOKEN, "permissions": ["route"]},
        {"name": "ops", "token_sha256": token_digest(OPS_TOKEN), "permissions": ["route", "admin"]},
        {"name": "batch", "mtls_identity": "batch.internal", "permissions": ["route"]},
    ]}))
    return CallerRegistry.from_file(path)


def test_tokens_match_in_plain_and_hashed_form(registry: CallerRegistry) -> None:
    assert registry.by_token(APP_TOKEN).name == "app"
    assert registry.by_token(OPS_TOKEN).name == "ops"
    assert registry.by_token(APP_TOKEN + "x") is None
    assert registry.by_token(token_digest(OPS_TOKEN)) is None  # the digest itself is not a credential


def test_statuses(registry: CallerRegistry) -> None:
    assert authorize(registry, Permission.ROUTE, APP_TOKEN, []).name == "app"
    assert authorize(registry, Permission.ADMIN, OPS_TOKEN, []).name == "ops"
    assert authorize(registry, Permission.ROUTE, None, ["other", "batch.internal"]).name == "batch"
    for token, identities in ((None, []), ("", []), ("wrong-token-0123456789", ["batch.internal"]),
                              (None, ["stranger"])):
        with pytest.raises(UnauthenticatedError) as refused:
            authorize(registry, Permission.ROUTE, token, identities)
        assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
    for token, identities in ((APP_TOKEN, []), (None, ["batch.internal"])):
        with pytest.raises(PermissionDeniedError) as denied:
            authorize(registry, Permission.ADMIN, token, identities)
        assert "'admin'" in denied.value.message


@pytest.mark.parametrize(("metadata", "expected"), [
    ((), None),
    ((("x-request-id", "1"),), None),
    ((("authorization", "Bearer abc"),), "abc"),
    ((("authorization", "bearer  abc "),), "abc"),
    ((("authorization", "Basic abc"),), ""),
    ((("authorization", b"Bearer raw"),), "raw"),
])
def test_bearer_token(metadata, expected) -> None:
    assert bearer_token(metadata) == expected


@pytest.mark.parametrize(("entry", "field"), [
    ({"name": "x", "token": "short", "permissions": ["route"]}, "token"),
    ({"name": "x", "token": APP_TOKEN, "token_sha256": token_digest(APP_TOKEN), "permissions": ["route"]},
     "not both"),
    ({"name": "x", "permissions": ["route"]}, "needs a token"),
    ({"name": "x", "token": APP_TOKEN, "permissions": ["root"]}, "permissions"),
    ({"name": "x", "token": APP_TOKEN, "permissions": ["route"], "role": "admin"}, "role"),
])
def test_invalid_callers_files_name_the_problem(tmp_path, entry, field) -> None:
    path = tmp_path / "callers.json"
    path.write_text(json.dumps({"callers": [entry]}))
    with pytest.raises(ValueError, match=field):
        CallerRegistry.from_file(path)
