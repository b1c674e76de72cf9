"""Auth and transport security on a mesh with mutual TLS on every hop and caller authentication on the router.

Certificates come from `services.common.certs` (the code behind `make certs`); the callers file gives `app` a token
with the `route` permission, `ops` a token with `route` and `admin`, and the client certificate `client` (mTLS
identity) `route`. Each case below is a real call through the SDK (token and TLS options) or a raw stub, and must end
with exactly the expected status. It also checks that a full Generate crosses mTLS to the classifier (not degraded)
and to the worker, that health and reflection stay open, that an oversized prompt is INVALID_ARGUMENT, and that the
prompt text appears in no service's log. Writes auth.json into the
session's results directory (`tests.fixtures.results`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients.credentials import TlsOptions
from clients.messages import Requirements
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient
from core.errors import QuantmeshError
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.common.auth import token_digest
from services.common.certs import issue, make_ca, make_local_pki
from tests.fixtures.reliability import LocalMesh, MeshTls
from tests.reliability.accounting import ScenarioResult
from tests.reliability.meshes import synthetic_worker
from tests.reliability.traffic import until

APP_TOKEN = "app-" + uuid.uuid4().hex
OPS_TOKEN = "ops-" + uuid.uuid4().hex
CANARY = "canary-" + uuid.uuid4().hex  # a prompt no log may contain
REQUIREMENTS = Requirements(max_output_tokens=4, latency_budget_ms=5000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("pki")
    written = make_local_pki(directory, callers=("client", "stranger"))
    # Same name as an authorised caller, signed by a CA the mesh does not trust.
    written["foreign"] = issue(make_ca("foreign CA"), "client", server=False, client=True).write(directory,
                                                                                                  "foreign")
    callers = directory / "callers.json"
    callers.write_text(json.dumps({"callers": [
        {"name": "app", "token_sha256": token_digest(APP_TOKEN), "permissions": ["route"]},
        {"name": "ops", "token": OPS_TOKEN, "permissions": ["route", "admin"]},
        {"name": "client-cert", "mtls_identity": "client", "permissions": ["route"]},
    ]}))
    written["callers"] = (callers, callers)
    return written


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory, pki):
    mesh_tls = MeshTls(ca_file=pki["ca"][0], service_cert={name: pki[name] for name in ("router", "classifier",
                                                                                          "worker")},
                       callers_file=pki["callers"][0])
    worker = synthetic_worker("syn-auth", "syn-auth", accuracy=(0.9, 0.8, 0.7), price_per_hour_usd=1.0)
    async with LocalMesh(tmp_path_factory.mktemp("auth-mesh"), [worker], tls=mesh_tls, log_level="INFO",
                         router_env={"QUANTMESH_ROUTER_CLASSIFIER_TIMEOUT_MS": "1000"}) as running:
        # The router is SERVING once its profiles load; its load stream to the worker comes up a moment later.
        async def routable() -> bool:
            async with AsyncQuantmeshClient(running.router_address, token=OPS_TOKEN, max_attempts=1,
                                            tls=tls_options(pki, "stranger")) as client:
                try:
                    return not (await client.complete("warm-up", REQUIREMENTS)).decision.classifier_degraded
                except QuantmeshError:
                    return False

        assert await until(routable, 30.0), "the router never routed to the worker over mutual TLS"
        yield running


def tls_options(pki, cert: str | None) -> TlsOptions:
    cert_file, key_file = pki[cert] if cert else (None, None)
    return TlsOptions(ca_file=pki["ca"][0], cert_file=cert_file, key_file=key_file)


async def status_of(mesh: LocalMesh, pki, *, cert: str | None, token: str | None, call: str,
                    plaintext: bool = False, prompt: str = "Hello there") -> str:
    """The status name ("OK" or the gRPC code) of one SDK call."""
    client = AsyncQuantmeshClient(mesh.router_address, token=token, max_attempts=1, rpc_timeout_s=5.0,
                                  tls=None if plaintext else tls_options(pki, cert))
    try:
        if call == "generate":
            completion = await client.complete(prompt, REQUIREMENTS)
            assert not completion.decision.classifier_degraded  # the classifier answered, over mutual TLS
            assert completion.summary.served_by.model_id == "syn-auth"
        elif call == "route":
            await client.route(prompt, REQUIREMENTS)
        else:
            await client.profiles.get()
        return "OK"
    except QuantmeshError as exc:
        return exc.code.name
    finally:
        await client.close()


CASES = [  # name, client certificate, token, call, expected status
    ("no_token", "stranger", None, "route", "UNAUTHENTICATED"),
    ("wrong_token", "stranger", "wrong-" + uuid.uuid4().hex, "route", "UNAUTHENTICATED"),
    ("wrong_token_with_authorised_cert", "client", "wrong-" + uuid.uuid4().hex, "route", "UNAUTHENTICATED"),
    ("app_token_generate", "stranger", APP_TOKEN, "generate", "OK"),
    ("app_token_admin", "stranger", APP_TOKEN, "admin", "PERMISSION_DENIED"),
    ("ops_token_admin", "stranger", OPS_TOKEN, "admin", "OK"),
    ("mtls_identity_route", "client", None, "route", "OK"),
    ("mtls_identity_admin", "client", None, "admin", "PERMISSION_DENIED"),
    ("no_token_admin", "stranger", None, "admin", "UNAUTHENTICATED"),
    ("certificate_from_another_ca", "foreign", OPS_TOKEN, "route", "UNAVAILABLE"),
    ("no_client_certificate", None, OPS_TOKEN, "route", "UNAVAILABLE"),
]


async def test_callers_are_refused_with_the_right_status(mesh: LocalMesh, pki) -> None:
    result = ScenarioResult("auth")
    statuses: dict[str, str] = {}
    for name, cert, token, call, expected in CASES:
        statuses[name] = await status_of(mesh, pki, cert=cert, token=token, call=call, prompt=f"{CANARY} {name}")
    statuses["plaintext_to_a_tls_router"] = await status_of(mesh, pki, cert=None, token=OPS_TOKEN, call="route",
                                                            plaintext=True)
    statuses["oversized_prompt"] = await status_of(mesh, pki, cert="stranger", token=APP_TOKEN, call="route",
                                                   prompt="word " * 20_000)
    expected = {name: status for name, _, _, _, status in CASES}
    expected.update(plaintext_to_a_tls_router="UNAVAILABLE", oversized_prompt="INVALID_ARGUMENT")

    result.sent = len(statuses)
    for name, status in statuses.items():
        if status == "OK":
            result.succeeded += 1
        else:
            result.rejected[status] += 1
    mismatches = {name: (statuses[name], want) for name, want in expected.items() if statuses[name] != want}
    result.lost = len(mismatches)
    result.figures.update(statuses=statuses, mismatches=mismatches)
    result.write()
    assert not mismatches, mismatches


async def test_health_and_reflection_stay_open_and_internal_hops_need_a_certificate(mesh: LocalMesh, pki) -> None:
    stranger = grpc.ssl_channel_credentials(pki["ca"][0].read_bytes(), pki["stranger"][1].read_bytes(),
                                            pki["stranger"][0].read_bytes())
    async with grpc.aio.secure_channel(mesh.router_address, stranger) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                    timeout=5)
        names = {service.name async for response in responses
                 for service in response.list_services_response.service}
        assert "quantmesh.router.v1.RouterService" in names
    # The worker accepts only callers with a certificate from the mesh's CA.
    without_cert = grpc.ssl_channel_credentials(pki["ca"][0].read_bytes())
    async with grpc.aio.secure_channel(mesh.worker_addresses["syn-auth"], without_cert) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await worker_pb2_grpc.InferenceWorkerServiceStub(channel).GetLoad(worker_pb2.GetLoadRequest(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_sync_sdk_and_cli_accept_token_and_tls(mesh: LocalMesh, pki) -> None:
    def sync_route(token: str | None) -> str:
        with QuantmeshClient(mesh.router_address, token=token, max_attempts=1,
                             tls=tls_options(pki, "stranger")) as client:
            try:
                client.route(f"{CANARY} sync", REQUIREMENTS)
                return "OK"
            except QuantmeshError as exc:
                return exc.code.name

    assert await asyncio.to_thread(sync_route, APP_TOKEN) == "OK"
    assert await asyncio.to_thread(sync_route, None) == "UNAUTHENTICATED"

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        cert, key = pki["stranger"]
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "--router", mesh.router_address, "--tls-ca", str(pki["ca"][0]),
             "--tls-cert", str(cert), "--tls-key", str(key), *extra, "route", f"{CANARY} cli"],
            check=False, capture_output=True, text=True, timeout=60,
            env={**os.environ, "QUANTMESH_TOKEN": "", "COLUMNS": "200"})

    allowed = await asyncio.to_thread(cli, "--token", APP_TOKEN)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    refused = await asyncio.to_thread(cli)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stdout + refused.stderr


def test_no_prompt_text_in_any_log(mesh: LocalMesh) -> None:
    logs = {path.name: path.read_text(errors="replace") for path in mesh.log_dir.glob("*.log")}
    assert {"router.log", "classifier.log", "worker-syn-auth.log"} <= set(logs)
    assert any("route_decision" in text for text in logs.values())  # the logs are not empty: requests were logged
    leaked = [name for name, text in logs.items() if CANARY in text]
    assert not leaked, f"prompt text found in {leaked}"
