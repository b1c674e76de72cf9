"""Conversions between the router's protos and its domain types (pure; validation errors name the field).

Raises `core.errors.InvalidArgument` (INVALID_ARGUMENT) for malformed requests.
"""

from __future__ import annotations

import math

from core.errors import InvalidArgumentError
from core.profiles import PairProfile
from core.vocabulary import (
    ComplexityTier,
    Quantization,
    RejectionReason,
    RouteOutcome,
    RoutingMode,
    TaskIntent,
)
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2
from services.router.policy import CandidateScore, Decision, LoadSnapshot, QueryClassification, RoutingRequest

MAX_REQUEST_ID_CHARS = 128
DEGRADED_MODEL_VERSION = "degraded-rules-v1"

_QUANTIZATION_TO_PROTO = {
    Quantization.NONE: common_pb2.QUANTIZATION_NONE,
    Quantization.FP8: common_pb2.QUANTIZATION_FP8,
    Quantization.AWQ: common_pb2.QUANTIZATION_AWQ,
    Quantization.GPTQ: common_pb2.QUANTIZATION_GPTQ,
    Quantization.GGUF: common_pb2.QUANTIZATION_GGUF,
}
_QUANTIZATION_FROM_PROTO = {value: key for key, value in _QUANTIZATION_TO_PROTO.items()}
_TIER_TO_PROTO = {
    ComplexityTier.SIMPLE: common_pb2.COMPLEXITY_TIER_SIMPLE,
    ComplexityTier.COMPLEX: common_pb2.COMPLEXITY_TIER_COMPLEX,
    ComplexityTier.HARD: common_pb2.COMPLEXITY_TIER_HARD,
}
_TIER_FROM_PROTO = {value: key for key, value in _TIER_TO_PROTO.items()}
_INTENT_TO_PROTO = {intent: common_pb2.TaskIntent.Value(f"TASK_INTENT_{intent.name}") for intent in TaskIntent}
_INTENT_FROM_PROTO = {value: key for key, value in _INTENT_TO_PROTO.items()}
_REASON_TO_PROTO = {reason: router_pb2.RejectionReason.Value(f"REJECTION_REASON_{reason.name}")
                    for reason in RejectionReason}
_OUTCOME_TO_PROTO = {outcome: router_pb2.RouteOutcome.Value(f"ROUTE_OUTCOME_{outcome.name}") for outcome in RouteOutcome}
_MODE_FROM_PROTO = {
    common_pb2.ROUTING_MODE_UNSPECIFIED: RoutingMode.INTERACTIVE,
    common_pb2.ROUTING_MODE_INTERACTIVE: RoutingMode.INTERACTIVE,
    common_pb2.ROUTING_MODE_BATCH: RoutingMode.BATCH,
}


def quantization_to_proto(quantization: Quantization) -> int:
    return _QUANTIZATION_TO_PROTO[quantization]


def quantization_from_proto(value: int) -> Quantization | None:
    """The domain quantization, None for UNSPECIFIED or an unknown value."""
    return _QUANTIZATION_FROM_PROTO.get(value)


def pair_to_proto(pair: PairProfile) -> common_pb2.ModelQuantizationPair:
    return common_pb2.ModelQuantizationPair(model_id=pair.model_id,
                                            quantization=quantization_to_proto(pair.quantization))


def validate_request_id(request_id: str) -> str:
    """The caller's request id, checked for length (INVALID_ARGUMENT naming `request_id`)."""
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(f"request_id: at most {MAX_REQUEST_ID_CHARS} characters, got {len(request_id)}")
    return request_id


def input_text(request: router_pb2.RouteRequest | router_pb2.GenerateRequest) -> str:
    """The text to classify: the prompt, or the chat rendered as "role: content" lines.

    Raises:
        InvalidArgumentError: no input, an empty prompt, or a chat message without role or content.
    """
    which = request.WhichOneof("input")
    if which == "prompt":
        if not request.prompt.strip():
            raise InvalidArgumentError("prompt: must not be empty")
        return request.prompt
    if which == "chat":
        if not request.chat.messages:
            raise InvalidArgumentError("chat.messages: at least one message is required")
        lines = []
        for index, message in enumerate(request.chat.messages):
            if message.role == common_pb2.CHAT_ROLE_UNSPECIFIED:
                raise InvalidArgumentError(f"chat.messages[{index}].role: must be set")
            if message.role not in common_pb2.ChatRole.values():  # proto3 enums are open: any int32 arrives
                raise InvalidArgumentError(f"chat.messages[{index}].role: unknown value {message.role}")
            if not message.content:
                raise InvalidArgumentError(f"chat.messages[{index}].content: must not be empty")
            role = common_pb2.ChatRole.Name(message.role).removeprefix("CHAT_ROLE_").lower()
            lines.append(f"{role}: {message.content}")
        return "\n".join(lines)
    raise InvalidArgumentError("input: set either prompt or chat")


def validate_requirements(requirements: router_pb2.RoutingRequirements, has_field: bool) -> None:
    """Checks the requirements' ranges (INVALID_ARGUMENT naming the field)."""
    if not has_field:
        raise InvalidArgumentError("requirements: required")
    if requirements.max_output_tokens < 1:
        raise InvalidArgumentError("requirements.max_output_tokens: must be at least 1")
    if requirements.latency_budget_ms < 1:
        raise InvalidArgumentError("requirements.latency_budget_ms: must be at least 1")
    accuracy = requirements.required_accuracy
    if math.isnan(accuracy) or not 0.0 <= accuracy <= 1.0:
        raise InvalidArgumentError(f"requirements.required_accuracy: must be in [0, 1], got {accuracy}")
    if requirements.mode not in _MODE_FROM_PROTO:
        raise InvalidArgumentError(f"requirements.mode: unknown value {requirements.mode}")


def routing_request(requirements: router_pb2.RoutingRequirements, budget_ms: float) -> RoutingRequest:
    """The policy's request from validated requirements and the effective budget (ms)."""
    return RoutingRequest(
        max_output_tokens=requirements.max_output_tokens,
        budget_ms=budget_ms,
        required_accuracy=requirements.required_accuracy,
        mode=_MODE_FROM_PROTO[requirements.mode],
    )


def classification_from_proto(classification: classifier_pb2.Classification) -> QueryClassification:
    """The policy's view of a classifier answer; an unspecified tier is taken as HARD (the safe side)."""
    return QueryClassification(
        tier=_TIER_FROM_PROTO.get(classification.tier, ComplexityTier.HARD),
        intent=_INTENT_FROM_PROTO.get(classification.intent),
        numeric_token_share=min(1.0, max(0.0, classification.numeric_token_share)),
        reference_input_tokens=classification.estimated_input_tokens,
    )


def classification_to_proto(query: QueryClassification, model_version: str) -> classifier_pb2.Classification:
    """A Classification message for a rule-based answer (probabilities are not known: one-hot tier)."""
    tier = _TIER_TO_PROTO[query.tier]
    return classifier_pb2.Classification(
        tier=tier,
        tier_probabilities=[classifier_pb2.TierProbability(tier=value, probability=float(value == tier))
                            for value in _TIER_TO_PROTO.values()],
        intent=_INTENT_TO_PROTO[query.intent] if query.intent else common_pb2.TASK_INTENT_UNSPECIFIED,
        numeric_token_share=query.numeric_token_share,
        estimated_input_tokens=query.reference_input_tokens,
        model_version=model_version,
    )


def candidate_to_proto(candidate: CandidateScore) -> router_pb2.Candidate:
    return router_pb2.Candidate(
        pair=pair_to_proto(candidate.pair),
        eligible=candidate.eligible,
        rejections=[router_pb2.Rejection(reason=_REASON_TO_PROTO[r.reason], detail=r.detail)
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
        outcome=_OUTCOME_TO_PROTO[decision.outcome],
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
