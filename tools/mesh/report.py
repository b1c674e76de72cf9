"""Summary figures of a prompt sample streamed through the router (pure: no I/O, no printing).

Percentiles are linear-interpolated (numpy's default method). Costs are the router's own figures
(`GenerationSummary.estimated_cost_usd` / `actual_cost_usd`, USD). The baseline is "every request to the most
accurate pair": the pair with the highest mean expected accuracy over the sample's decisions; its estimated cost per
request is that pair's `Candidate.estimated_cost_usd`, and its actual-equivalent cost is the request's actual cost
scaled by the ratio of the two pairs' estimates (the router prices tokens linearly per pair).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from clients.messages import GenerationSummary, Pair, RouteDecision


@dataclass(frozen=True)
class PromptResult:
    """What happened to one prompt of the sample.

    Attributes:
        source: Data set of the prompt (gsm8k, mmlu, clinc150, mt_bench).
        prompt: The prompt text.
        latency_budget_ms: The budget it was sent with.
        required_accuracy: The accuracy it required, in [0, 1].
        decision: The routing decision (None if the call failed before it).
        summary: The generation summary (None if the call failed).
        text: The generated text received.
        client_ttft_ms: Time from sending to the first token chunk, measured by the client, ms (None: no token).
        client_e2e_ms: Time from sending to the end of the stream (or the error), measured by the client, ms.
        error_code: The gRPC status name of the failure ("" on success).
        error_message: The server's message ("" on success).
    """

    source: str
    prompt: str
    latency_budget_ms: int
    required_accuracy: float
    decision: RouteDecision | None
    summary: GenerationSummary | None
    text: str
    client_ttft_ms: float | None
    client_e2e_ms: float
    error_code: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.summary is not None and not self.error_code


@dataclass(frozen=True)
class PairStats:
    """Traffic and latency of one pair over the sample (successful requests only; ms)."""

    pair: str
    requests: int
    share: float
    ttft_p50_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    actual_cost_usd: float
    completion_tokens: int


@dataclass(frozen=True)
class SampleSummary:
    """The figures printed at the end of the main job.

    Attributes:
        requests: Prompts sent.
        succeeded: Streams that ended with a summary.
        errors: Failures by gRPC status name.
        outcomes: Decisions by outcome (routed, fallback, rejected).
        pairs: Per served pair, most traffic first.
        budget_ms: The distinct budgets used, ascending.
        ttft_p50_ms / ttft_p99_ms / e2e_p50_ms / e2e_p90_ms / e2e_p99_ms: Router-measured latency percentiles, ms.
        within_budget: Share of all requests that completed within their budget (failures count as misses).
        estimated_cost_usd / actual_cost_usd: Sums over successful requests, USD.
        baseline_pair: The most accurate pair (None when no decision had candidates).
        baseline_estimated_cost_usd / baseline_actual_cost_usd: The same requests all sent to `baseline_pair`, USD.
        savings_fraction: 1 - actual / baseline actual (0 when the baseline costs nothing).
        expected_accuracy / baseline_expected_accuracy: Mean profile accuracy for each request's tier of the chosen
            pair and of the baseline pair, in [0, 1].
        prompt_tokens / completion_tokens: Totals over successful requests.
    """

    requests: int
    succeeded: int
    errors: dict[str, int]
    outcomes: dict[str, int]
    pairs: list[PairStats]
    budget_ms: list[int]
    ttft_p50_ms: float
    ttft_p99_ms: float
    e2e_p50_ms: float
    e2e_p90_ms: float
    e2e_p99_ms: float
    within_budget: float
    estimated_cost_usd: float
    actual_cost_usd: float
    baseline_pair: str | None
    baseline_estimated_cost_usd: float
    baseline_actual_cost_usd: float
    savings_fraction: float
    expected_accuracy: float
    baseline_expected_accuracy: float
    prompt_tokens: int
    completion_tokens: int


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def most_accurate_pair(decisions: list[RouteDecision]) -> Pair | None:
    """The pair with the highest mean `expected_accuracy` over `decisions` (ties: the lexically smallest name)."""
    totals: dict[Pair, list[float]] = {}
    for decision in decisions:
        for candidate in decision.candidates:
            totals.setdefault(candidate.pair, []).append(candidate.expected_accuracy)
    if not totals:
        return None
    return min(totals, key=lambda pair: (-float(np.mean(totals[pair])), str(pair)))


def summarize(results: list[PromptResult]) -> SampleSummary:
    """Computes the sample's summary figures (see `SampleSummary`)."""
    done = [r for r in results if r.ok]
    summaries = [r.summary for r in done if r.summary is not None]
    decisions = [r.decision for r in results if r.decision is not None]
    baseline = most_accurate_pair(decisions)

    served = Counter(str(s.served_by) for s in summaries)
    pairs = []
    for name, count in served.most_common():
        mine = [s for s in summaries if str(s.served_by) == name]
        pairs.append(
            PairStats(
                pair=name,
                requests=count,
                share=count / len(summaries),
                ttft_p50_ms=_percentile([s.ttft_ms for s in mine], 50),
                e2e_p50_ms=_percentile([s.e2e_latency_ms for s in mine], 50),
                e2e_p99_ms=_percentile([s.e2e_latency_ms for s in mine], 99),
                actual_cost_usd=sum(s.actual_cost_usd for s in mine),
                completion_tokens=sum(s.usage.completion_tokens for s in mine),
            )
        )

    baseline_estimated = baseline_actual = 0.0
    accuracy: list[float] = []
    baseline_accuracy: list[float] = []
    for result in done:
        assert result.summary is not None and result.decision is not None
        chosen = result.decision.candidate(result.summary.served_by) if result.summary.served_by else None
        base = result.decision.candidate(baseline) if baseline is not None else None
        if chosen is not None:
            accuracy.append(chosen.expected_accuracy)
        if base is not None:
            baseline_accuracy.append(base.expected_accuracy)
            baseline_estimated += base.estimated_cost_usd
            if chosen is not None and chosen.estimated_cost_usd > 0:
                baseline_actual += result.summary.actual_cost_usd * base.estimated_cost_usd / chosen.estimated_cost_usd
            else:
                baseline_actual += result.summary.actual_cost_usd
    actual = sum(s.actual_cost_usd for s in summaries)
    within = sum(1 for r in done if r.summary is not None and r.summary.e2e_latency_ms <= r.latency_budget_ms)
    return SampleSummary(
        requests=len(results),
        succeeded=len(done),
        errors=dict(Counter(r.error_code for r in results if r.error_code)),
        outcomes=dict(Counter(d.outcome.value for d in decisions)),
        pairs=pairs,
        budget_ms=sorted({r.latency_budget_ms for r in results}),
        ttft_p50_ms=_percentile([s.ttft_ms for s in summaries], 50),
        ttft_p99_ms=_percentile([s.ttft_ms for s in summaries], 99),
        e2e_p50_ms=_percentile([s.e2e_latency_ms for s in summaries], 50),
        e2e_p90_ms=_percentile([s.e2e_latency_ms for s in summaries], 90),
        e2e_p99_ms=_percentile([s.e2e_latency_ms for s in summaries], 99),
        within_budget=within / len(results) if results else 0.0,
        estimated_cost_usd=sum(s.estimated_cost_usd for s in summaries),
        actual_cost_usd=actual,
        baseline_pair=str(baseline) if baseline is not None else None,
        baseline_estimated_cost_usd=baseline_estimated,
        baseline_actual_cost_usd=baseline_actual,
        savings_fraction=1.0 - actual / baseline_actual if baseline_actual > 0 else 0.0,
        expected_accuracy=float(np.mean(accuracy)) if accuracy else float("nan"),
        baseline_expected_accuracy=float(np.mean(baseline_accuracy)) if baseline_accuracy else float("nan"),
        prompt_tokens=sum(s.usage.prompt_tokens for s in summaries),
        completion_tokens=sum(s.usage.completion_tokens for s in summaries),
    )


def result_record(result: PromptResult) -> dict:
    """One prompt's result as a JSON-ready record (what `quantmesh up --results-json` writes per prompt)."""
    decision, summary = result.decision, result.summary
    return {
        "source": result.source,
        "outcome": decision.outcome.value if decision else None,
        "chosen": str(decision.chosen) if decision and decision.chosen else None,
        "served_by": str(summary.served_by) if summary and summary.served_by else None,
        "reason": decision.reason if decision else None,
        "tier": decision.classification.tier.value if decision and decision.classification else None,
        "required_accuracy": result.required_accuracy,
        "expected_accuracy": (
            c.expected_accuracy if decision and summary and summary.served_by
            and (c := decision.candidate(summary.served_by)) else None
        ),
        "latency_budget_ms": result.latency_budget_ms,
        "ttft_ms": summary.ttft_ms if summary else None,
        "e2e_latency_ms": summary.e2e_latency_ms if summary else None,
        "client_ttft_ms": result.client_ttft_ms,
        "client_e2e_ms": result.client_e2e_ms,
        "prompt_tokens": summary.usage.prompt_tokens if summary else None,
        "completion_tokens": summary.usage.completion_tokens if summary else None,
        "estimated_cost_usd": summary.estimated_cost_usd if summary else None,
        "actual_cost_usd": summary.actual_cost_usd if summary else None,
        "error_code": result.error_code,
        "error_message": result.error_message,
    }
