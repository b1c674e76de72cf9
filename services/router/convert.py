"""Conversions between the router's protos and its domain types (pure).

Requests arrive here validated (`core.requests.validate_router_request`, before any classification or routing).
"""

from __future__ import annotations

from dataclasses import replace

from core import vocabulary
from core.classification import Classification, chat_text
from core.profiles import PairProfile
from core.vocabulary import ChatRole, ComplexityTier, Quantization, RoutingMode
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2
from services.router.policy import CandidateScore, Decision, LoadSnapshot, RoutingRequest


def pair_to_proto(pair: PairProfile) -> common_pb2.ModelQuantizationPair:
    return common_pb2.ModelQuantizationPair(model_id=pair.model_id,
                                            quantization=vocabulary.to_proto(pair.quantization))


def pair_key(pair: common_pb2.ModelQuantizationPair) -> tuple[str, Quantization]:
    """A pair message's identity, as `PairProfile.key`."""
    return (pair.model_id, vocabulary.from_proto(Quantization, pair.quantization))


def pair_info(pair: PairProfile, serving: bool) -> router_pb2.PairInfo:
    return router_pb2.PairInfo(pair=pair_to_proto(pair), serving=serving, max_model_len=pair.max_model_len,
                               accuracy=pair.overall_accuracy,
                               cost_per_1m_output_tokens_usd=pair.cost_per_1m_tokens_usd)


def input_text(request: router_pb2.RouteRequest | router_pb2.GenerateRequest) -> str:
    """The text to classify of a validated request (`core.requests`): the prompt, or the chat rendered as
    "role: content" lines."""
    if request.WhichOneof("input") == "prompt":
        return request.prompt
    return chat_text((vocabulary.from_proto(ChatRole, message.role).value, message.content)
                     for message in request.chat.messages)


def classification_from_proto(message: classifier_pb2.Classification) -> Classification:
    """A ClassifierService answer as the policy takes it; an unspecified tier is taken as HARD (the safe side)."""
    classification = Classification.from_proto(message)
    if classification.tier is ComplexityTier.UNSPECIFIED:
        classification = replace(classification, tier=ComplexityTier.HARD)
    return classification


def routing_mode(value: int) -> RoutingMode:
    """The request's routing mode; UNSPECIFIED is CHEAPEST (the proto's documented default)."""
    mode = vocabulary.from_proto(RoutingMode, value)
    return RoutingMode.CHEAPEST if mode is RoutingMode.UNSPECIFIED else mode


def routing_request(requirements: router_pb2.RoutingRequirements, budget_ms: float) -> RoutingRequest:
    """The policy's request from validated requirements and the effective budget (ms)."""
    return RoutingRequest(
        max_output_tokens=requirements.max_output_tokens,
        budget_ms=budget_ms,
        required_accuracy=requirements.required_accuracy,
        mode=routing_mode(requirements.mode),
    )


def candidate_to_proto(candidate: CandidateScore) -> router_pb2.Candidate:
    return router_pb2.Candidate(
        pair=pair_to_proto(candidate.pair),
        eligible=candidate.eligible,
        rejections=[router_pb2.Rejection(reason=vocabulary.to_proto(r.reason), detail=r.detail)
                    for r in candidate.rejections],
        utility=candidate.utility,
        expected_accuracy=candidate.expected_accuracy,
        predicted_ttft_ms=candidate.predicted_ttft_ms,
        predicted_latency_ms=candidate.predicted_latency_ms,
        estimated_cost_usd=candidate.estimated_cost_usd,
        estimated_input_tokens=candidate.estimated_input_tokens,
    )


def decision_to_proto(decision: Decision, request_id: str, classification: classifier_pb2.Classification,
                      classifier_degraded: bool) -> router_pb2.RouteDecision:
    message = router_pb2.RouteDecision(
        request_id=request_id,
        outcome=vocabulary.to_proto(decision.outcome),
        reason=decision.reason,
        candidates=[candidate_to_proto(candidate) for candidate in decision.candidates],
        classification=classification,
        classifier_degraded=classifier_degraded,
        profiles_version=decision.profiles_version,
        effective_budget_ms=decision.budget_ms,
    )
    if decision.chosen is not None:
        message.chosen.CopyFrom(pair_to_proto(decision.chosen.pair))
    return message


def load_from_proto(report: worker_pb2.LoadReport) -> LoadSnapshot:
    return LoadSnapshot(
        running_requests=report.running_requests,
        waiting_requests=report.waiting_requests,
        kv_cache_usage_fraction=report.kv_cache_usage_fraction,
    )


def worker_request(request: router_pb2.GenerateRequest, request_id: str) -> worker_pb2.GenerateRequest:
    """The worker's GenerateRequest for a routed request (same input and sampling)."""
    message = worker_pb2.GenerateRequest(
        request_id=request_id, max_output_tokens=request.requirements.max_output_tokens
    )
    if request.WhichOneof("input") == "chat":
        message.chat.CopyFrom(request.chat)
    else:
        message.prompt = request.prompt
    if request.HasField("sampling"):
        message.sampling.CopyFrom(request.sampling)
    return message
