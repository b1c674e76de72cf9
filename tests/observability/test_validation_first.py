"""A request the router must refuse is refused before anything else happens to it: INVALID_ARGUMENT naming the field,
with no classification, no routing decision and no worker call. Checked on the real mesh of
`tests.fixtures.observability`: the request's trace holds the router's span alone, and the classifier's, the
router's and both workers' counters do not move."""

from __future__ import annotations

import secrets

import grpc
import pytest

from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from tests.fixtures.observability import FAST, SLOW, ObservedMesh, scrape, wait_for

pytestmark = pytest.mark.vllm  # the session's observed mesh includes a vLLM worker

REQUIREMENTS = router_pb2.RoutingRequirements(max_output_tokens=8, latency_budget_ms=5000)


def _chat(role: int, content: str) -> common_pb2.Conversation:
    return common_pb2.Conversation(messages=[common_pb2.ChatMessage(role=role, content=content)])


BAD_REQUESTS = [
    (router_pb2.GenerateRequest(chat=_chat(7, "Hi"), requirements=REQUIREMENTS), "chat.messages[0].role"),
    (router_pb2.GenerateRequest(chat=_chat(common_pb2.CHAT_ROLE_USER, "  "), requirements=REQUIREMENTS),
     "chat.messages[0].content"),
    (router_pb2.GenerateRequest(prompt="Hi", requirements=REQUIREMENTS,
                                sampling=common_pb2.SamplingParams(temperature=3.5)), "sampling.temperature"),
    (router_pb2.GenerateRequest(prompt="Hi", requirements=REQUIREMENTS,
                                sampling=common_pb2.SamplingParams(top_p=0.0)), "sampling.top_p"),
    (router_pb2.GenerateRequest(prompt="Hi", requirements=REQUIREMENTS,
                                sampling=common_pb2.SamplingParams(stop=["x"] * 9)), "sampling.stop"),
]


def _activity(mesh: ObservedMesh) -> dict[str, float]:
    """What would move if the request had been classified, routed or sent to a worker."""
    classifier, router = scrape(mesh.classifier.metrics_port), scrape(mesh.router.metrics_port)
    activity = {
        "classifications": classifier.value("quantmesh_classifier_classifications_total"),
        "decisions": router.value("quantmesh_router_decisions_total"),
        "degraded": router.value("quantmesh_router_classifier_degraded_total"),
    }
    for pair in (FAST, SLOW):
        worker = scrape(mesh.workers[pair].metrics_port)
        activity[f"{pair.model} requests"] = worker.value("quantmesh_worker_e2e_latency_seconds_count")
        activity[f"{pair.model} prompt tokens"] = worker.value("quantmesh_worker_prompt_tokens_total")
    return activity


@pytest.mark.parametrize(("request_message", "field"), BAD_REQUESTS, ids=[field for _, field in BAD_REQUESTS])
def test_invalid_request_is_refused_before_classification_routing_and_any_worker(
    observed_mesh: ObservedMesh, request_message: router_pb2.GenerateRequest, field: str
) -> None:
    before = _activity(observed_mesh)
    trace_id = secrets.token_hex(16)
    with grpc.insecure_channel(observed_mesh.router.address) as channel, pytest.raises(grpc.RpcError) as info:
        list(router_pb2_grpc.RouterServiceStub(channel).Generate(
            request_message, timeout=10.0, metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field + ":"), info.value.details()

    # The router's server span ends after every span it would have caused (a Classify or worker call ends first).
    spans = wait_for(lambda: [s for s in observed_mesh.receiver.spans() if s.trace_id == trace_id])
    assert [s.service for s in spans] == ["quantmesh-router"], [(s.service, s.span.name) for s in spans]
    assert not any(key.startswith("quantmesh.route.") for key in spans[0].attributes())  # no decision was made
    assert _activity(observed_mesh) == before
