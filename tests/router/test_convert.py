"""Unit tests of the proto <-> domain conversions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.classification import Classification
from core.requests import validate_router_request
from core.vocabulary import ComplexityTier, RejectionReason, RoutingMode, TaskIntent
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from services.router import convert
from services.router.policy import PolicyConfig, RoutingRequest, WorkerView, decide
from tests.router.helpers import document, pair_dict


def test_every_classification_maps_both_ways() -> None:
    for tier in ComplexityTier.known():
        for intent in TaskIntent:
            query = Classification(tier=tier, intent=intent, numeric_token_share=0.25, estimated_input_tokens=12,
                                   model_version="v")
            round_trip = convert.classification_from_proto(query.to_proto())
            assert replace(round_trip, tier_probabilities={}) == query
            assert round_trip.tier_probabilities == {t: float(t is tier) for t in ComplexityTier.known()}


def test_unspecified_tier_is_taken_as_hard() -> None:
    query = convert.classification_from_proto(classifier_pb2.Classification(estimated_input_tokens=3))
    assert query.tier is ComplexityTier.HARD and query.intent is TaskIntent.UNSPECIFIED


def test_chat_is_rendered_for_the_classifier_and_passed_to_the_worker() -> None:
    chat = common_pb2.Conversation(messages=[
        common_pb2.ChatMessage(role=common_pb2.CHAT_ROLE_SYSTEM, content="Be brief."),
        common_pb2.ChatMessage(role=common_pb2.CHAT_ROLE_USER, content="Hi"),
    ])
    request = router_pb2.GenerateRequest(
        request_id="r", chat=chat, sampling=common_pb2.SamplingParams(temperature=0.0),
        requirements=router_pb2.RoutingRequirements(max_output_tokens=7, latency_budget_ms=100))
    assert convert.input_text(request) == "system: Be brief.\nuser: Hi"
    worker = convert.worker_request(request, "r-2")
    assert worker.request_id == "r-2" and worker.max_output_tokens == 7
    assert worker.chat == chat and worker.sampling.HasField("temperature")


def test_requirements_mode_defaults_to_cheapest() -> None:
    requirements = router_pb2.RoutingRequirements(max_output_tokens=1, latency_budget_ms=10)
    validate_router_request(router_pb2.RouteRequest(prompt="Hi", requirements=requirements))
    assert convert.routing_request(requirements, 10.0).mode is RoutingMode.CHEAPEST
    requirements.mode = common_pb2.ROUTING_MODE_BATCH
    assert convert.routing_request(requirements, 10.0).mode is RoutingMode.BATCH


def test_decision_carries_every_candidate_with_reasons() -> None:
    doc = document(pair_dict("a", "127.0.0.1:1", accuracy=(0.2, 0.2, 0.2)), pair_dict("b", "127.0.0.1:2"))
    query = Classification(ComplexityTier.SIMPLE, TaskIntent.CHAT, 0.0, 10)
    decision = decide(RoutingRequest(max_output_tokens=4, budget_ms=1000.0, required_accuracy=0.5), query, doc,
                      {pair.key: WorkerView(healthy=True) for pair in doc.pairs}, PolicyConfig())
    message = convert.decision_to_proto(decision, "rid", query.to_proto(), False)
    assert message.outcome == router_pb2.ROUTE_OUTCOME_ROUTED
    assert message.chosen.model_id == "b" and message.chosen.quantization == common_pb2.QUANTIZATION_NONE
    assert [c.pair.model_id for c in message.candidates] == ["b", "a"]
    rejected = message.candidates[1]
    assert not rejected.eligible and rejected.utility == 0.0
    assert rejected.rejections[0].reason == router_pb2.REJECTION_REASON_ACCURACY
    assert message.candidates[0].utility == pytest.approx(decision.chosen.utility)
    assert {r.name for r in RejectionReason} <= {
        name.removeprefix("REJECTION_REASON_") for name in router_pb2.RejectionReason.keys()}  # noqa: SIM118 - an enum wrapper, not a dict
