"""The router classifying in its own process (`QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR`).

Real router child processes; the embedded model must answer exactly as the ClassifierService does with the same
artifact, on the event loop (short texts) and in a thread (long ones).
"""

from __future__ import annotations

import grpc
import pytest
from pydantic import ValidationError

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR, MANIFEST, TOKENIZER, WEIGHTS
from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from services.router.classifiers import INLINE_MAX_TEXT_CHARS
from services.router.settings import RouterSettings
from tests.router.helpers import document, pair_dict
from tools.mesh.processes import free_port

REQUIREMENTS = router_pb2.RoutingRequirements(max_output_tokens=16, latency_budget_ms=2000)

SHORT = "What is 17% of 2,340? Show the steps."
LONG = ("Summarise the following incident report for the on-call channel. "
        + "The payment service returned 503 for 12.5% of requests between 02:10 and 02:41 UTC. " * 60)


@pytest.fixture
def static_profiles(tmp_path):
    """One pair whose worker does not listen: Route still classifies and decides (REJECTED, unhealthy)."""
    path = tmp_path / "profiles.json"
    path.write_text(document(pair_dict("tiny-a", f"127.0.0.1:{free_port()}")).to_json())
    return path


async def test_embedded_classification_equals_the_classifier_service(router_factory, static_profiles,
                                                                      classifier_address) -> None:
    assert len(SHORT) <= INLINE_MAX_TEXT_CHARS < len(LONG)  # one text on the event loop, one in a thread
    router = router_factory(static_profiles_path=static_profiles,
                            extra_env={"QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR": str(DEFAULT_ARTIFACT_DIR)})
    async with grpc.aio.insecure_channel(router.address) as router_channel, \
            grpc.aio.insecure_channel(classifier_address) as classifier_channel:
        route = router_pb2_grpc.RouterServiceStub(router_channel)
        service = classifier_pb2_grpc.ClassifierServiceStub(classifier_channel)
        for text in (SHORT, LONG):
            decision = (await route.Route(router_pb2.RouteRequest(prompt=text, requirements=REQUIREMENTS),
                                          timeout=5)).decision
            expected = (await service.Classify(classifier_pb2.ClassifyRequest(text=text), timeout=5)).classification
            assert not decision.classifier_degraded
            assert decision.classification == expected


def test_a_corrupt_artifact_stops_the_router_with_the_reason(router_factory, static_profiles, tmp_path) -> None:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    for name in (MANIFEST, TOKENIZER):
        (artifact / name).write_bytes((DEFAULT_ARTIFACT_DIR / name).read_bytes())
    weights = bytearray((DEFAULT_ARTIFACT_DIR / WEIGHTS).read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (artifact / WEIGHTS).write_bytes(bytes(weights))
    with pytest.raises(RuntimeError) as info:
        router_factory(static_profiles_path=static_profiles,
                       extra_env={"QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR": str(artifact)})
    assert "ArtifactError" in str(info.value) and WEIGHTS in str(info.value)


def test_the_classifier_service_and_the_embedded_model_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        RouterSettings(classifier_address="127.0.0.1:1", classifier_artifact_dir=DEFAULT_ARTIFACT_DIR)
