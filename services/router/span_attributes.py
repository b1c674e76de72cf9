"""What the router's span (the `RouterService/Route` or `/Generate` server span) says about a request: the decision
(chosen pair, utility, outcome, every rejection) and, for Generate, the usage and cost. Pure functions.

The prompt text is not among them unless the router's `record_prompt_text` setting asks for it.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from core.classification import Classification
from core.vocabulary import Quantization, TaskIntent, from_proto
from quantmesh.router.v1 import router_pb2
from services.router.policy import Decision


def decision_attributes(decision: Decision, query: Classification, mode: str, request_id: str,
                        classifier_degraded: bool) -> dict[str, AttributeValue]:
    """Attributes of a routing decision; rejections as "model/quantization:reason" strings, one per rejection."""
    rejections = [f"{candidate.pair.name}:{rejection.reason.value}"
                  for candidate in decision.candidates for rejection in candidate.rejections]
    attributes: dict[str, AttributeValue] = {
        "quantmesh.request_id": request_id,
        "quantmesh.route.outcome": decision.outcome.value,
        "quantmesh.route.mode": mode,
        "quantmesh.route.tier": query.tier.value,
        "quantmesh.route.intent": _known(query.intent),
        "quantmesh.route.classifier_degraded": classifier_degraded,
        "quantmesh.route.budget_ms": decision.budget_ms,
        "quantmesh.route.profiles_version": decision.profiles_version,
        "quantmesh.route.candidates": len(decision.candidates),
        "quantmesh.route.rejections.count": len(rejections),
        "quantmesh.route.rejections": rejections,
    }
    if decision.chosen is not None:
        chosen = decision.chosen
        attributes.update({
            "quantmesh.route.model": chosen.pair.model_id,
            "quantmesh.route.quantization": chosen.pair.quantization.value,
            "quantmesh.route.utility": chosen.utility,
            "quantmesh.route.predicted_latency_ms": chosen.predicted_latency_ms,
            "quantmesh.route.estimated_cost_usd": chosen.estimated_cost_usd,
        })
    return attributes


def summary_attributes(summary: router_pb2.GenerationSummary) -> dict[str, AttributeValue]:
    """Attributes of a completed Generate: the pair that served, the usage, the cost and the latencies."""
    return {
        "quantmesh.served_by.model": summary.served_by.model_id,
        "quantmesh.served_by.quantization": _known(from_proto(Quantization, summary.served_by.quantization)),
        "quantmesh.usage.prompt_tokens": summary.usage.prompt_tokens,
        "quantmesh.usage.completion_tokens": summary.usage.completion_tokens,
        "quantmesh.usage.total_tokens": summary.usage.total_tokens,
        "quantmesh.cost.actual_usd": summary.actual_cost_usd,
        "quantmesh.attempts": summary.attempts,
        "quantmesh.ttft_ms": summary.ttft_ms,
        "quantmesh.e2e_latency_ms": summary.e2e_latency_ms,
    }


def _known(value: Quantization | TaskIntent) -> str:
    """The value's name, or "" when UNSPECIFIED (the attribute is then empty rather than a made-up value)."""
    return "" if value.value == "unspecified" else value.value
