"""Unit tests of the proto <-> domain conversions."""

from __future__ import annotations

import pytest

from core.vocabulary import ComplexityTier, Quantization, RejectionReason, RoutingMode, TaskIntent
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from services.router import convert
from services.router.policy import PolicyConfig, QueryClassification, RoutingRequest, WorkerState, decide
from tests.router.helpers import document, pair_dict


def test_every_enum_value_maps_both_ways() -> None:
    for quantization in Quantization:
        assert convert.quantization_from_proto(convert.quantization_to_proto(quantization)) is quantization
    assert convert.quantization_from_proto(common_pb2.QUANTIZATION_UNSPECIFIED) is None
    for tier in ComplexityTier:
        for intent in TaskIntent:
            query = QueryClassification(tier=tier, intent=intent, numeric_token_share=0.25,
                                        reference_input_tokens=12)
            assert convert.classification_from_proto(convert.classification_to_proto(query, "v")) == query


def test_unspecified_tier_is_taken_as_hard() -> None:
    query = convert.classification_from_proto(classifier_pb2.Classification(estimated_input_tokens=3))
    assert query.tier is ComplexityTier.HARD and query.intent is None


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


def test_requirements_mode_defaults_to_interactive() -> None:
    requirements = router_pb2.RoutingRequirements(max_output_tokens=1, latency_budget_ms=10)
    convert.validate_requirements(requirements, has_field=True)
    assert convert.routing_request(requirements, 10.0).mode is RoutingMode.INTERACTIVE
    requirements.mode = common_pb2.ROUTING_MODE_BATCH
    assert convert.routing_request(requirements, 10.0).mode is RoutingMode.BATCH


def test_decision_carries_every_candidate_with_reasons() -> None:
    doc = document(pair_dict("a", "127.0.0.1:1", accuracy=(0.2, 0.2, 0.2)), pair_dict("b", "127.0.0.1:2"))
    query = QueryClassification(ComplexityTier.SIMPLE, TaskIntent.CHAT, 0.0, 10)
    decision = decide(RoutingRequest(max_output_tokens=4, budget_ms=1000.0, required_accuracy=0.5), query, doc,
                      {pair.key: WorkerState(healthy=True) for pair in doc.pairs}, PolicyConfig())
    message = convert.decision_to_proto(decision, "rid", convert.classification_to_proto(query, "v"), False)
    assert message.outcome == router_pb2.ROUTE_OUTCOME_ROUTED
    assert message.chosen.model_id == "b" and message.chosen.quantization == common_pb2.QUANTIZATION_NONE
    assert [c.pair.model_id for c in message.candidates] == ["b", "a"]
    rejected = message.candidates[1]
    assert not rejected.eligible and rejected.utility == 0.0
    assert rejected.rejections[0].reason == router_pb2.REJECTION_REASON_ACCURACY
    assert message.candidates[0].utility == pytest.approx(decision.chosen.utility)
    assert {r.name for r in RejectionReason} <= {
        name.removeprefix("REJECTION_REASON_") for name in router_pb2.RejectionReason.keys()}  # noqa: SIM118 - an enum wrapper, not a dict
