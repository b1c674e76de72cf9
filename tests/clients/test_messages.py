"""Proto <-> SDK type conversions (pure; the enums' own mapping is tested in tests/core/test_vocabulary.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from clients import messages
from core import vocabulary
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2


def _decision_proto() -> router_pb2.RouteDecision:
    small = common_pb2.ModelQuantizationPair(model_id="llama-8b", quantization=common_pb2.QUANTIZATION_AWQ)
    large = common_pb2.ModelQuantizationPair(model_id="llama-70b", quantization=common_pb2.QUANTIZATION_FP8)
    return router_pb2.RouteDecision(
        request_id="r-1",
        outcome=router_pb2.ROUTE_OUTCOME_ROUTED,
        chosen=small,
        reason="cheapest pair within budget",
        candidates=[
            router_pb2.Candidate(pair=small, eligible=True, utility=0.8, expected_accuracy=0.9,
                                 predicted_ttft_ms=30, predicted_latency_ms=300, estimated_cost_usd=1e-6,
                                 estimated_input_tokens=12),
            router_pb2.Candidate(pair=large, eligible=False, rejections=[
                router_pb2.Rejection(reason=router_pb2.REJECTION_REASON_LATENCY_BUDGET, detail="900 ms > 500 ms"),
                router_pb2.Rejection(reason=router_pb2.REJECTION_REASON_QUANTIZATION_RULE, detail="fp8, 40% digits"),
            ], expected_accuracy=0.97, predicted_latency_ms=900, estimated_cost_usd=9e-6),
        ],
        classification=classifier_pb2.Classification(
            tier=common_pb2.COMPLEXITY_TIER_SIMPLE, intent=common_pb2.TASK_INTENT_MATH, intent_confidence=0.7,
            needs_strong_model_probability=0.2, numeric_token_share=0.4, estimated_input_tokens=10,
            model_version="clf-1"),
        profiles_version=7,
        effective_budget_ms=500.0,
    )


def test_route_decision_from_proto_keeps_every_field() -> None:
    decision = messages.RouteDecision.from_proto(_decision_proto())
    assert decision.outcome is vocabulary.RouteOutcome.ROUTED
    assert decision.chosen == messages.Pair("llama-8b", vocabulary.Quantization.AWQ)
    assert str(decision.chosen) == "llama-8b/awq"
    assert [c.eligible for c in decision.candidates] == [True, False]
    rejected = decision.candidates[1]
    assert [r.reason for r in rejected.rejections] == [
        vocabulary.RejectionReason.LATENCY_BUDGET, vocabulary.RejectionReason.QUANTIZATION_RULE]
    assert rejected.rejections[0].detail == "900 ms > 500 ms"
    assert decision.classification is not None
    assert decision.classification.tier is vocabulary.ComplexityTier.SIMPLE
    assert decision.classification.intent is vocabulary.TaskIntent.MATH
    assert decision.profiles_version == 7 and decision.effective_budget_ms == 500.0
    assert decision.candidate(messages.Pair("llama-70b", vocabulary.Quantization.FP8)) is rejected


def test_rejected_decision_has_no_chosen_pair_and_no_classification() -> None:
    decision = messages.RouteDecision.from_proto(router_pb2.RouteDecision(outcome=router_pb2.ROUTE_OUTCOME_REJECTED))
    assert decision.chosen is None and decision.classification is None


def test_generate_events_convert_by_kind() -> None:
    chunk = messages.event_from_proto(router_pb2.GenerateResponse(
        chunk=common_pb2.TokenChunk(text="Par", token_ids=[5, 6], first_token_index=3)))
    assert chunk == messages.TokenChunk("Par", (5, 6), 3)
    summary = messages.event_from_proto(router_pb2.GenerateResponse(summary=router_pb2.GenerationSummary(
        usage=common_pb2.Usage(prompt_tokens=4, completion_tokens=2, total_tokens=6),
        finish_reason=common_pb2.FINISH_REASON_LENGTH, ttft_ms=12.5, e2e_latency_ms=40.0,
        estimated_cost_usd=2e-6, actual_cost_usd=1e-6, attempts=2)))
    assert isinstance(summary, messages.GenerationSummary)
    assert summary.usage == messages.Usage(4, 2, 6)
    assert summary.finish_reason is vocabulary.FinishReason.LENGTH
    assert summary.served_by is None and summary.attempts == 2
    with pytest.raises(ValueError, match="without a known event"):
        messages.event_from_proto(router_pb2.GenerateResponse())


def test_requirements_sampling_and_chat_to_proto() -> None:
    requirements = messages.Requirements(max_output_tokens=16, latency_budget_ms=250, required_accuracy=0.8,
                                         mode=vocabulary.RoutingMode.BATCH).to_proto()
    assert (requirements.max_output_tokens, requirements.latency_budget_ms, requirements.mode) == (
        16, 250, common_pb2.ROUTING_MODE_BATCH)
    assert requirements.required_accuracy == pytest.approx(0.8)
    sampling = messages.Sampling(temperature=0.0, seed=3, stop=("\n",)).to_proto()
    assert sampling.HasField("temperature") and sampling.temperature == 0.0
    assert not sampling.HasField("top_p") and list(sampling.stop) == ["\n"]
    request = router_pb2.GenerateRequest()
    messages.fill_input(request, [messages.ChatMessage(vocabulary.ChatRole.USER, "hi")])
    assert request.WhichOneof("input") == "chat"
    assert request.chat.messages[0].role == common_pb2.CHAT_ROLE_USER
    messages.fill_input(request, "plain")
    assert request.WhichOneof("input") == "prompt"


def test_profiles_document_from_proto() -> None:
    response = router_pb2.GetProfilesResponse(document_json="{}", version=3,
                                              source=router_pb2.PROFILE_SOURCE_REDIS)
    response.loaded_at.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5))
    document = messages.ProfilesDocument.from_proto(response)
    assert document.version == 3 and document.source is vocabulary.ProfileSource.REDIS
    assert document.loaded_at == dt.datetime(2026, 1, 2, 3, 4, 5)
