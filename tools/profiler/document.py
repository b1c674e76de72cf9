"""Turns measurements into the router's profile document (built with the router's own pydantic models).

Which measurement feeds which field (the router's latency model, `services.router.policy.predict_latency_ms`, adds the
live queue on top of unloaded figures):
- ttft_p50_ms, ttft_p99_ms, itl_p50_ms: the lowest concurrency level (one stream when it is 1: unloaded);
  itl_p50_ms is the median over requests of each stream's mean inter-token latency (TPOT), not the median of single
  chunk gaps: tokens reach the client in bursts (engine steps and gRPC writes coalesce), so most gaps are near 0 and
  their median understates the per-token time the router multiplies by the output tokens (the per-gap ITL
  distribution is in the report);
- throughput_tokens_per_s: output tokens/s of the level with the most (saturation);
- cost_per_1m_tokens_usd: price per hour / (that throughput x 3600) x 1e6 (output tokens);
- prefill_tokens_per_s: the lowest level's median prompt tokens / TTFT; cost_per_1m_input_tokens_usd: price per hour
  / (that rate x 3600) x 1e6;
- accuracy_by_tier / accuracy_by_intent: the eval set's items of each tier / intent, with their graded counts and
  95% Wilson intervals in graded_by_tier / graded_by_intent;
- mean_output_tokens_by_intent: mean completion tokens of the eval answers of each intent (items the worker
  refused excluded): the router's expected output length;
- max_model_len: the worker's own (what it accepts); the recommendation from the eval set is in the report;
- gpu_memory_gib: GetModelInfo's memory used, after the load;
- tokenization_ratio: sum of the worker's usage.prompt_tokens / sum of reference tokens over the eval prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.profiles import GradedSlice, PairProfile, ProfileDocument, TierAccuracy
from tools.profiler.accuracy import AccuracyReport, accuracy_report
from tools.profiler.derived import cost_per_1m_tokens_usd, recommended_max_model_len, tokenization_ratio
from tools.profiler.measurement import ItemResult, PairMeasurement, WorkerFacts
from tools.profiler.stats import LevelSummary, saturation

GIB = 1024**3


@dataclass(frozen=True)
class PairFigures:
    """A pair's profile plus the figures the report shows that the profile schema has no field for."""

    profile: PairProfile
    accuracy: AccuracyReport
    unloaded: LevelSummary
    saturated: LevelSummary
    levels: tuple[LevelSummary, ...]
    recommended_max_model_len: int
    facts: WorkerFacts
    refused_items: int
    items: tuple[ItemResult, ...]


def pair_figures(measurement: PairMeasurement, instance_price_per_hour_usd: float) -> PairFigures:
    """Derives one pair's profile.

    Raises:
        ValueError: no level measured, an eval tier without items (its accuracy cannot be measured), or no eval
            item the worker accepted (the tokenization ratio cannot be measured).
        pydantic.ValidationError: the figures break the router's schema.
    """
    results = measurement.items
    accuracy = accuracy_report([result.item for result in results], [result.score for result in results])
    missing = accuracy.missing_tiers()
    if missing:
        raise ValueError(f"the eval set has no item of tier {', '.join(tier.value for tier in missing)}: "
                         "its accuracy cannot be measured")
    accepted = [result for result in results if result.prompt_tokens is not None]
    if not accepted:
        raise ValueError(f"worker {measurement.endpoint} refused every eval item")
    ratio = tokenization_ratio([result.prompt_tokens for result in accepted],  # type: ignore[misc]
                               [result.reference_tokens for result in accepted])
    # A refused item's prompt length is estimated from its reference count: it still belongs to the distribution.
    context_lengths = [
        (result.prompt_tokens if result.prompt_tokens is not None else math.ceil(result.reference_tokens * ratio))
        + result.max_output_tokens
        for result in results
    ]
    unloaded = min(measurement.levels, key=lambda level: level.concurrency)
    saturated = saturation(measurement.levels)
    throughput = saturated.output_tokens_per_s
    prefill = unloaded.prefill_tokens_per_s
    facts = measurement.facts
    output_tokens: dict = {}
    for result in accepted:
        output_tokens.setdefault(result.item.intent, []).append(result.completion_tokens)
    profile = PairProfile(
        model_id=measurement.model_id,
        quantization=measurement.quantization,
        endpoint=measurement.endpoint,
        instance_price_per_hour_usd=instance_price_per_hour_usd,
        throughput_tokens_per_s=throughput,
        cost_per_1m_tokens_usd=cost_per_1m_tokens_usd(instance_price_per_hour_usd, throughput),
        prefill_tokens_per_s=prefill,
        cost_per_1m_input_tokens_usd=cost_per_1m_tokens_usd(instance_price_per_hour_usd, prefill),
        ttft_p50_ms=unloaded.ttft_ms.p50,
        ttft_p99_ms=unloaded.ttft_ms.p99,
        itl_p50_ms=unloaded.tpot_ms.p50,
        accuracy_by_tier=TierAccuracy(**{tier.value: slice_.accuracy for tier, slice_ in accuracy.by_tier.items()}),
        accuracy_by_intent={intent: slice_.accuracy for intent, slice_ in accuracy.by_intent.items()},
        graded_by_tier={tier: GradedSlice.of(slice_.correct, slice_.total) for tier, slice_ in accuracy.by_tier.items()},
        graded_by_intent={intent: GradedSlice.of(slice_.correct, slice_.total)
                          for intent, slice_ in accuracy.by_intent.items()},
        mean_output_tokens_by_intent={intent: max(1.0, sum(counts) / len(counts))
                                      for intent, counts in output_tokens.items()},
        max_model_len=facts.max_model_len,
        gpu_memory_gib=facts.memory_used_bytes / GIB,
        tokenization_ratio=ratio,
        measured_at=measurement.measured_at,
    )
    return PairFigures(
        profile=profile,
        accuracy=accuracy,
        unloaded=unloaded,
        saturated=saturated,
        levels=measurement.levels,
        recommended_max_model_len=recommended_max_model_len(context_lengths),
        facts=facts,
        refused_items=len(results) - len(accepted),
        items=results,
    )


def profile_document(figures: Sequence[PairFigures]) -> ProfileDocument:
    """The document of every pair (version 0: the store assigns one on publish).

    Raises:
        pydantic.ValidationError: duplicate pairs or endpoints, or no pair.
    """
    return ProfileDocument(pairs=[figure.profile for figure in figures])
