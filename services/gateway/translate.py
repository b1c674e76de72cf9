"""OpenAI bodies to the router's protos and back (pure: no I/O).

The gateway decides nothing: a `model` other than "auto" becomes `requirements.pinned_pair`, the extension fields
become `RoutingRequirements`, sampling fields become `SamplingParams`; the router validates all of it (its
INVALID_ARGUMENT names the field) and routes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from core import vocabulary
from core.errors import InvalidArgumentError, NotFoundError
from core.vocabulary import ChatRole, FinishReason, Quantization, RejectionReason, RouteOutcome, RoutingMode
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from services.gateway.openai_types import (
    AUTO_MODEL,
    CandidateView,
    ChatCompletionRequest,
    DecisionView,
    RejectionView,
    SummaryView,
    Usage,
)

# Request headers that set the routing requirements when the body does not (`x-quantmesh-<field>`).
HEADER_PREFIX = "x-quantmesh-"
_ROLES = {"system": ChatRole.SYSTEM, "developer": ChatRole.SYSTEM, "user": ChatRole.USER,
          "assistant": ChatRole.ASSISTANT}
_FINISH = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length", FinishReason.ABORT: "stop"}


def pair_id(pair: common_pb2.ModelQuantizationPair) -> str:
    """The OpenAI model id of a pair: "<model_id>/<quantization>", as `PairProfile.name`."""
    return f"{pair.model_id}/{vocabulary.from_proto(Quantization, pair.quantization).value}"


def parse_pair_id(model: str) -> common_pb2.ModelQuantizationPair | None:
    """None for "auto"; else the pair the id names.

    Raises:
        NotFoundError: the id is not "<model_id>/<quantization>" with a known quantization (HTTP 404).
    """
    if model == AUTO_MODEL:
        return None
    model_id, _, quantization = model.rpartition("/")
    known = {member.value: member for member in Quantization.known()}
    if not model_id or quantization not in known:
        raise NotFoundError(f"model {model!r}: not a pair id; use \"auto\" or an id that GET /v1/models lists "
                            "(\"<model_id>/<quantization>\")")
    return common_pb2.ModelQuantizationPair(model_id=model_id, quantization=vocabulary.to_proto(known[quantization]))


def _header_number(headers: Mapping[str, str], field: str, kind: type[int | float]) -> int | float | None:
    raw = headers.get(HEADER_PREFIX + field.replace("_", "-"))
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidArgumentError(f"header {HEADER_PREFIX}{field.replace('_', '-')}: not a number: {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"header {HEADER_PREFIX}{field.replace('_', '-')}: must be finite, got {raw!r}")
    return value


def requirements(body: ChatCompletionRequest, headers: Mapping[str, str], *, default_budget_ms: int,
                 default_max_tokens: int) -> router_pb2.RoutingRequirements:
    """The routing requirements: body fields, else `x-quantmesh-*` headers, else the gateway's defaults.

    Raises:
        InvalidArgumentError: a header is not a number or names an unknown mode (HTTP 400).
        NotFoundError: `model` is not "auto" or a pair id (HTTP 404).
    """
    budget = body.latency_budget_ms or _header_number(headers, "latency_budget_ms", int) or default_budget_ms
    accuracy = body.min_accuracy if body.min_accuracy is not None else _header_number(headers, "min_accuracy", float)
    mode_name = body.mode or headers.get(HEADER_PREFIX + "mode")
    modes = {member.value: member for member in RoutingMode.known()}
    if mode_name is not None and mode_name not in modes:
        raise InvalidArgumentError(f"mode: unknown value {mode_name!r} (one of {', '.join(sorted(modes))})")
    result = router_pb2.RoutingRequirements(
        max_output_tokens=body.output_token_limit(default_max_tokens),
        latency_budget_ms=int(budget),
        required_accuracy=float(accuracy or 0.0),
        mode=vocabulary.to_proto(modes[mode_name]) if mode_name else 0,
    )
    pinned = parse_pair_id(body.model)
    if pinned is not None:
        result.pinned_pair.CopyFrom(pinned)
    return result


def sampling(body: ChatCompletionRequest) -> common_pb2.SamplingParams:
    params = common_pb2.SamplingParams()
    for field in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(body, field)
        if value is not None:
            setattr(params, field, value)
    if body.stop is not None:
        params.stop.extend([body.stop] if isinstance(body.stop, str) else body.stop)
    return params


def generate_request(body: ChatCompletionRequest, headers: Mapping[str, str], request_id: str, *,
                     default_budget_ms: int, default_max_tokens: int) -> router_pb2.GenerateRequest:
    """The router's GenerateRequest for one chat completion (see `requirements` for the errors)."""
    conversation = common_pb2.Conversation(messages=[
        common_pb2.ChatMessage(role=vocabulary.to_proto(_ROLES[message.role]), content=message.text())
        for message in body.messages
    ])
    return router_pb2.GenerateRequest(
        request_id=request_id, chat=conversation, sampling=sampling(body),
        requirements=requirements(body, headers, default_budget_ms=default_budget_ms,
                                  default_max_tokens=default_max_tokens))


def finish_reason(value: int) -> str:
    """OpenAI's finish_reason of a worker's FinishReason ("length" when max_tokens or the context ran out)."""
    return _FINISH.get(vocabulary.from_proto(FinishReason, value), "stop")


def decision_view(decision: router_pb2.RouteDecision) -> DecisionView:
    return DecisionView(
        request_id=decision.request_id,
        outcome=vocabulary.from_proto(RouteOutcome, decision.outcome).value,
        pair=pair_id(decision.chosen) if decision.HasField("chosen") else None,
        reason=decision.reason,
        tier=vocabulary.from_proto(vocabulary.ComplexityTier, decision.classification.tier).value,
        intent=vocabulary.from_proto(vocabulary.TaskIntent, decision.classification.intent).value,
        classifier_degraded=decision.classifier_degraded,
        profiles_version=decision.profiles_version,
        effective_budget_ms=decision.effective_budget_ms,
        candidates=[CandidateView(
            pair=pair_id(candidate.pair), eligible=candidate.eligible, utility=candidate.utility,
            rejections=[RejectionView(reason=vocabulary.from_proto(RejectionReason, rejection.reason).value,
                                      detail=rejection.detail) for rejection in candidate.rejections],
            expected_accuracy=candidate.expected_accuracy, predicted_ttft_ms=candidate.predicted_ttft_ms,
            predicted_latency_ms=candidate.predicted_latency_ms, estimated_cost_usd=candidate.estimated_cost_usd,
        ) for candidate in decision.candidates],
    )


def summary_view(summary: router_pb2.GenerationSummary) -> SummaryView:
    decode_s = max(summary.e2e_latency_ms - summary.ttft_ms, 0.0) / 1000.0
    # Tokens after the first over the time after it: the decode rate a reader sees.
    tokens_per_s = (summary.usage.completion_tokens - 1) / decode_s if decode_s > 0 else 0.0
    return SummaryView(served_by=pair_id(summary.served_by), ttft_ms=summary.ttft_ms,
                       e2e_latency_ms=summary.e2e_latency_ms, output_tokens_per_s=max(tokens_per_s, 0.0),
                       estimated_cost_usd=summary.estimated_cost_usd, cost_usd=summary.actual_cost_usd,
                       attempts=summary.attempts)


def usage(summary: router_pb2.GenerationSummary) -> Usage:
    return Usage(prompt_tokens=summary.usage.prompt_tokens, completion_tokens=summary.usage.completion_tokens,
                 total_tokens=summary.usage.total_tokens)


def decision_headers(decision: router_pb2.RouteDecision) -> dict[str, str]:
    """Response headers known once the router has decided (sent before the first token)."""
    headers = {"x-quantmesh-request-id": decision.request_id,
               "x-quantmesh-outcome": vocabulary.from_proto(RouteOutcome, decision.outcome).value}
    if not decision.HasField("chosen"):
        return headers
    headers["x-quantmesh-pair"] = pair_id(decision.chosen)
    chosen = next((c for c in decision.candidates if c.pair == decision.chosen), None)
    if chosen is not None:
        headers["x-quantmesh-predicted-ttft-ms"] = f"{chosen.predicted_ttft_ms:.1f}"
        headers["x-quantmesh-estimated-cost-usd"] = f"{chosen.estimated_cost_usd:.10f}"
    return headers


def summary_headers(summary: router_pb2.GenerationSummary) -> dict[str, str]:
    """Response headers of a non-streamed answer, measured once it is complete."""
    return {"x-quantmesh-served-by": pair_id(summary.served_by), "x-quantmesh-ttft-ms": f"{summary.ttft_ms:.1f}",
            "x-quantmesh-e2e-latency-ms": f"{summary.e2e_latency_ms:.1f}",
            "x-quantmesh-cost-usd": f"{summary.actual_cost_usd:.10f}"}
