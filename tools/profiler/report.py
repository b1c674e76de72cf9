"""The human report: rich tables for the terminal and a JSON file with every measured figure."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from core.vocabulary import ComplexityTier, TaskIntent
from tools.profiler.document import GIB, PairFigures
from tools.profiler.stats import Distribution, LevelSummary


def summary_table(figures: Sequence[PairFigures]) -> Table:
    """One row per pair: the profile's figures and the recommended max_model_len."""
    table = Table(title="Pair profiles (latency at the lowest concurrency, throughput at saturation)")
    for column in ("pair", "endpoint", "TTFT p50/p99 ms", "ITL p50 ms (TPOT)", "e2e p50/p99 ms", "tok/s (c)", "req/s",
                   "cost $/1M tok", "acc simple/complex/hard", "GPU mem GiB", "KV cache tok",
                   "max_model_len (rec. P95)", "tok ratio"):
        table.add_column(column, justify="left" if column in ("pair", "endpoint") else "right")
    for figure in figures:
        profile = figure.profile
        tiers = profile.accuracy_by_tier
        table.add_row(
            profile.name,
            profile.endpoint,
            f"{profile.ttft_p50_ms:.1f} / {profile.ttft_p99_ms:.1f}",
            f"{profile.itl_p50_ms:.2f}",
            f"{figure.unloaded.e2e_latency_ms.p50:.1f} / {figure.unloaded.e2e_latency_ms.p99:.1f}",
            f"{profile.throughput_tokens_per_s:.1f} ({figure.saturated.concurrency})",
            f"{figure.saturated.requests_per_s:.2f}",
            f"{profile.cost_per_1m_tokens_usd:.4g}",
            f"{tiers.simple:.2f} / {tiers.complex:.2f} / {tiers.hard:.2f}",
            f"{profile.gpu_memory_gib:.3f}",
            str(figure.facts.kv_cache_capacity_tokens),
            f"{profile.max_model_len} ({figure.recommended_max_model_len})",
            f"{profile.tokenization_ratio:.3f}",
        )
    return table


def levels_table(figures: Sequence[PairFigures]) -> Table:
    """One row per pair and concurrency level: p50 / p90 / p99 of TTFT, ITL, TPOT, e2e, and throughput."""
    table = Table(title="Latency by concurrency (p50 / p90 / p99, ms)")
    for column in ("pair", "c", "requests", "TTFT", "ITL", "TPOT", "e2e", "tok/s", "req/s"):
        table.add_column(column, justify="left" if column == "pair" else "right")

    def triple(distribution: Distribution) -> str:
        return f"{distribution.p50:.1f} / {distribution.p90:.1f} / {distribution.p99:.1f}"

    for figure in figures:
        for level in figure.levels:
            table.add_row(figure.profile.name, str(level.concurrency), str(level.requests), triple(level.ttft_ms),
                          triple(level.itl_ms), triple(level.tpot_ms), triple(level.e2e_latency_ms),
                          f"{level.output_tokens_per_s:.1f}", f"{level.requests_per_s:.2f}")
    return table


def accuracy_table(figures: Sequence[PairFigures]) -> Table:
    """Accuracy per tier and per intent (correct / items) for each pair."""
    table = Table(title="Accuracy on the eval set (correct / items)")
    table.add_column("slice")
    for figure in figures:
        table.add_column(figure.profile.name, justify="right")
    slices: list[ComplexityTier | TaskIntent] = [*ComplexityTier, *sorted({intent for f in figures for intent in f.accuracy.by_intent})]
    for slice_ in slices:
        cells = []
        for figure in figures:
            found = (figure.accuracy.by_tier if isinstance(slice_, ComplexityTier) else figure.accuracy.by_intent).get(slice_)
            cells.append(f"{found.accuracy:.2f} ({found.correct}/{found.total})" if found else "-")
        label = f"tier {slice_.value}" if isinstance(slice_, ComplexityTier) else f"intent {slice_.value}"
        table.add_row(label, *cells)
    return table


def max_model_len_advice(figures: Sequence[PairFigures]) -> list[str]:
    """One line per pair whose max_model_len is below the eval set's P95 context (requests refused) or more than
    twice it (KV-cache memory reserved for contexts the traffic does not use)."""
    lines = []
    for figure in figures:
        served, recommended = figure.profile.max_model_len, figure.recommended_max_model_len
        if served < recommended:
            lines.append(f"{figure.profile.name}: max_model_len {served} is below the eval set's P95 context "
                         f"{recommended}: more than 5% of such requests would be refused; raise it to {recommended}")
        elif served > 2 * recommended:
            lines.append(f"{figure.profile.name}: max_model_len {served} is over twice the eval set's P95 context "
                         f"{recommended}: consider {recommended} to leave KV-cache memory for more requests")
    return lines


def _level_dict(level: LevelSummary) -> dict[str, Any]:
    return dataclasses.asdict(level)


def report_dict(figures: Sequence[PairFigures], run: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the run as JSON-ready data (the profile document holds only what the router needs).

    Args:
        figures: The pairs.
        run: The run's settings (eval file, levels, price...), copied as given.
    """
    pairs = []
    for figure in figures:
        results = figure.items
        pairs.append({
            "profile": figure.profile.model_dump(mode="json"),
            "levels": [_level_dict(level) for level in figure.levels],
            "saturation_concurrency": figure.saturated.concurrency,
            "requests_per_s_at_saturation": figure.saturated.requests_per_s,
            "recommended_max_model_len": figure.recommended_max_model_len,
            "worker": dataclasses.asdict(figure.facts) | {"memory_used_gib": figure.facts.memory_used_bytes / GIB},
            "accuracy": {
                "overall": dataclasses.asdict(figure.accuracy.overall),
                "by_tier": {tier.value: dataclasses.asdict(s) for tier, s in figure.accuracy.by_tier.items()},
                "by_intent": {intent.value: dataclasses.asdict(s) for intent, s in figure.accuracy.by_intent.items()},
            },
            "refused_items": figure.refused_items,
            "items": [
                {"id": result.item.id, "tier": result.item.tier.value, "intent": result.item.intent.value,
                 "scorer": result.item.scorer.value, "correct": result.score.correct,
                 "extracted": result.score.extracted, "reason": result.score.reason, "output": result.output,
                 "prompt_tokens": result.prompt_tokens, "reference_tokens": result.reference_tokens,
                 "completion_tokens": result.completion_tokens, "max_output_tokens": result.max_output_tokens}
                for result in results
            ],
        })
    return {"run": run, "pairs": pairs}
