"""The shared server bootstrap, exercised through a real service (the classifier) on loopback.

Covers issue 2's contract for every server: health NOT_SERVING until ready, reflection, INVALID_ARGUMENT with a
message for malformed requests, and a SIGTERM that drains an in-flight stream before the process exits.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from services.classifier.server import create_server
from services.classifier.settings import ClassifierSettings
from tests.fixtures.waiting import wait_until
from tools.mesh.launch import start_classifier
from tools.paths import REPO_ROOT

SERVICE = "quantmesh.classifier.v1.ClassifierService"


async def _health(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return response.status


async def test_health_is_not_serving_until_the_service_is_ready(tmp_path: Path) -> None:
    # An empty artifact directory: the server runs but the model never loads, so it must never report SERVING.
    broken, _ = await create_server(ClassifierSettings(port=0, artifact_dir=tmp_path, log_json=False))
    ready, _ = await create_server(ClassifierSettings(port=0))
    try:
        for service in ("", SERVICE):
            assert await _health(f"127.0.0.1:{broken.port}", service) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await _health(f"127.0.0.1:{ready.port}", service) == health_pb2.HealthCheckResponse.SERVING
        await ready.set_serving(False)
        assert await _health(f"127.0.0.1:{ready.port}", SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await _health(f"127.0.0.1:{ready.port}", "no.such.Service")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await broken.stop(None)
        await ready.stop(None)


def test_reflection_lists_the_service_and_describes_its_methods(classifier_address: str) -> None:
    with grpc.insecure_channel(classifier_address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
        file_descriptor = database.FindFileContainingSymbol(SERVICE)
        methods = {m.name for s in file_descriptor.service for m in s.method}
        assert methods == {"Classify", "ClassifyStream"}


def test_malformed_request_gets_invalid_argument_naming_the_field(classifier_address: str) -> None:
    with grpc.insecure_channel(classifier_address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Classify(classifier_pb2.ClassifyRequest(text=""), timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text" in error.value.details()


def test_sigterm_drains_an_in_flight_stream_before_exiting(tmp_path: Path) -> None:
    with start_classifier(tmp_path / "classifier.log", env={"QUANTMESH_CLASSIFIER_SHUTDOWN_GRACE_S": "20"}) as process:
        channel = grpc.insecure_channel(process.address)
        health_updates: list[int] = []
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE))


        def record_health() -> None:
            try:
                health_updates.extend(update.status for update in watch)
            except grpc.RpcError:  # cancelled below, once the test has seen what it needs
                pass

        watcher = threading.Thread(target=record_health, daemon=True)
        watcher.start()

        requests: queue.Queue[classifier_pb2.ClassifyStreamRequest | None] = queue.Queue()
        stream = classifier_pb2_grpc.ClassifierServiceStub(channel).ClassifyStream(iter(requests.get, None))
        requests.put(classifier_pb2.ClassifyStreamRequest(request_id="before", text="What is 2 + 2?"))
        assert next(stream).request_id == "before"

        process.send_signal(signal.SIGTERM)
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        wait_until(lambda: not_serving in health_updates[1:], 10, interval_s=0.05,
                   message=lambda: f"health did not turn NOT_SERVING: {health_updates}")
        assert health_updates[0] == health_pb2.HealthCheckResponse.SERVING
        assert health_pb2.HealthCheckResponse.NOT_SERVING in health_updates[1:], "health did not turn NOT_SERVING"
        assert process.exit_code() is None, "the server exited with a stream still in flight"

        # The stream opened before SIGTERM keeps being served while the server drains.
        for i in range(5):
            requests.put(classifier_pb2.ClassifyStreamRequest(request_id=f"during-{i}", text="Summarise this text."))
            assert next(stream).request_id == f"during-{i}"
        requests.put(None)
        assert list(stream) == []
        assert stream.code() == grpc.StatusCode.OK
        watch.cancel()
        watcher.join(timeout=5)
        channel.close()
        assert process.process is not None
        assert process.process.wait(timeout=15) == 0


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed (scripts/setup.sh needs it)")
def test_a_node_client_built_from_the_protos_alone_calls_the_service(classifier_address: str) -> None:
    result = subprocess.run(
        ["node", str(REPO_ROOT / "tests/interop/node_client.js"), classifier_address],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["health"] == "SERVING"
    assert answer["service_health"] == "SERVING"
    assert {SERVICE, "grpc.health.v1.Health"} <= set(answer["services"])
    assert answer["classify"]["tier"].startswith("COMPLEXITY_TIER_")
    assert answer["classify"]["tier"] != "COMPLEXITY_TIER_UNSPECIFIED"
    assert answer["classify"]["estimated_input_tokens"] > 0
    assert answer["classify_empty"]["code"] == "INVALID_ARGUMENT"
    assert "text" in answer["classify_empty"]["details"]
