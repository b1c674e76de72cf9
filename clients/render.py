"""Rich tables and lines for the CLI: decisions, candidates, profiles, mesh endpoints, sample results and summary."""

from __future__ import annotations

import json
import math

from rich.console import Group
from rich.table import Table
from rich.text import Text

from clients.messages import ProfilesDocument, RouteDecision
from tools.mesh.comparison import ALL_BEST, ROUTED, Comparison
from tools.mesh.mesh import MeshEndpoints
from tools.mesh.report import PromptResult, SampleSummary


def _add_row(table: Table, *cells: str) -> None:
    """Adds a row of plain text (no rich markup: details and reasons may contain brackets)."""
    table.add_row(*(Text(cell) for cell in cells))


def usd(value: float) -> str:
    """USD with enough digits for per-request costs of small models (they are fractions of a cent)."""
    return f"${value:.8f}" if value < 0.01 else f"${value:,.4f}"


def ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f} ms"


def decision_view(decision: RouteDecision) -> Group:
    """The decision, then every candidate with its scores and rejection reasons (best first)."""
    chosen = str(decision.chosen) if decision.chosen else "-"
    head = Text.assemble(
        ("decision ", "bold"), (decision.outcome.value, "bold green" if decision.outcome.value == "routed" else "bold yellow"),
        "  chosen ", (chosen, "bold cyan"), f"  budget {ms(decision.effective_budget_ms)}",
        f"  profiles v{decision.profiles_version}", f"  request {decision.request_id}",
    )
    lines = [head, Text(f"reason: {decision.reason}")]
    if decision.classification is not None:
        c = decision.classification
        lines.append(Text(
            f"classification: tier {c.tier.value}, intent {c.intent.value} ({c.intent_confidence:.2f}), "
            f"P(needs strong) {c.needs_strong_model_probability:.2f}, numeric share {c.numeric_token_share:.2f}, "
            f"~{c.estimated_input_tokens} input tokens, model {c.model_version}"
            + ("  [degraded: rule-based]" if decision.classifier_degraded else "")
        ))
    table = Table(title="candidates", show_lines=False)
    for column in ("pair", "eligible", "utility", "accuracy", "TTFT (pred.)", "e2e (pred.)", "est. cost", "input tok",
                   "rejections"):
        table.add_column(column, overflow="fold")
    for c in decision.candidates:
        _add_row(
            table,
            str(c.pair), "yes" if c.eligible else "no", f"{c.utility:.3f}", f"{c.expected_accuracy:.3f}",
            ms(c.predicted_ttft_ms), ms(c.predicted_latency_ms), usd(c.estimated_cost_usd),
            str(c.estimated_input_tokens),
            "\n".join(f"{r.reason.value}: {r.detail}" for r in c.rejections) or "-",
        )
    return Group(*lines, table)


def profiles_view(profiles: ProfilesDocument) -> Group:
    """The profile document's pairs as a table, with its version and source."""
    head = Text(
        f"profiles version {profiles.version} from {profiles.source.value}"
        + (f", loaded {profiles.loaded_at:%Y-%m-%d %H:%M:%S} UTC" if profiles.loaded_at else "")
    )
    table = Table()
    for column in ("pair", "endpoint", "$/1M tok", "TTFT p50", "TTFT p99", "ITL p50", "tok/s",
                   "acc simple/complex/hard", "max len"):
        table.add_column(column)
    for pair in json.loads(profiles.document_json).get("pairs", []):
        accuracy = pair.get("accuracy_by_tier", {})
        _add_row(
            table,
            f"{pair.get('model_id')}/{pair.get('quantization')}", str(pair.get("endpoint")),
            f"{pair.get('cost_per_1m_tokens_usd', 0):.4f}", ms(pair.get("ttft_p50_ms")), ms(pair.get("ttft_p99_ms")),
            ms(pair.get("itl_p50_ms")), f"{pair.get('throughput_tokens_per_s', 0):.0f}",
            "/".join(f"{accuracy.get(t, 0):.2f}" for t in ("simple", "complex", "hard")), str(pair.get("max_model_len")),
        )
    return Group(head, table)


def endpoints_view(endpoints: MeshEndpoints) -> Table:
    """Where every part of the mesh listens."""
    table = Table(title="quantmesh is up")
    for column in ("service", "address", "pair", "started here", "log"):
        table.add_column(column)
    if endpoints.gateway_url is not None:
        _add_row(table, "gateway (chat page, OpenAI API)", endpoints.gateway_url, "-", "", "")
    _add_row(table, "router", endpoints.router_address, "-", "", "")
    _add_row(table, "classifier", endpoints.classifier_address, "-", "", "")
    _add_row(table, "redis", endpoints.redis_url, "-", "", "")
    for worker in endpoints.workers:
        _add_row(table, f"worker {worker.name}", worker.address, f"{worker.model_id}/{worker.quantization}",
                      "yes" if worker.managed else "no", str(worker.log_path or ""))
    table.caption = f"logs: {endpoints.log_dir}; profiles version {endpoints.profiles_version}"
    return table


def prompt_line(index: int, total: int, result: PromptResult) -> Text:
    """One line per sample prompt: source, chosen pair, outcome, TTFT, e2e vs budget, cost, and the reason."""
    head = Text(f"[{index:>3}/{total}] {result.source:<9} ")
    if result.decision is not None:
        chosen = str(result.summary.served_by if result.summary and result.summary.served_by else result.decision.chosen)
        head.append(f"{chosen:<22}", style="cyan")
        head.append(f" {result.decision.outcome.value:<8}")
    else:
        head.append(f"{'-':<22} {'-':<8}")
    if result.ok and result.summary is not None:
        s = result.summary
        head.append(
            f" TTFT {ms(s.ttft_ms):>8}  e2e {ms(s.e2e_latency_ms):>9} / {result.latency_budget_ms} ms"
            f"  {s.usage.completion_tokens:>3} tok  est {usd(s.estimated_cost_usd)}  actual {usd(s.actual_cost_usd)}"
        )
    else:
        head.append(f" {result.error_code}: {result.error_message}", style="red")
    if result.decision is not None:
        head.append(f"\n            reason: {result.decision.reason}", style="dim")
    return head


def summary_view(summary: SampleSummary) -> Group:
    """The end-of-run tables: traffic per pair, latency percentiles against budget, cost against the baseline."""
    traffic = Table(title="traffic per pair")
    for column in ("pair", "requests", "share", "TTFT p50", "e2e p50", "e2e p99", "output tokens", "actual cost"):
        traffic.add_column(column, justify="right")
    for p in summary.pairs:
        _add_row(traffic, p.pair, str(p.requests), f"{p.share:.0%}", ms(p.ttft_p50_ms), ms(p.e2e_p50_ms),
                        ms(p.e2e_p99_ms), str(p.completion_tokens), usd(p.actual_cost_usd))

    latency = Table(title="latency vs budget (router-measured)")
    for column in ("budget", "TTFT p50", "TTFT p99", "e2e p50", "e2e p90", "e2e p99", "within budget"):
        latency.add_column(column, justify="right")
    _add_row(latency, ", ".join(f"{b} ms" for b in summary.budget_ms), ms(summary.ttft_p50_ms), ms(summary.ttft_p99_ms),
                    ms(summary.e2e_p50_ms), ms(summary.e2e_p90_ms), ms(summary.e2e_p99_ms),
                    f"{summary.within_budget:.0%}")

    cost = Table(title="cost")
    for column in ("", "estimated", "actual", "mean expected accuracy"):
        cost.add_column(column, justify="right")
    _add_row(cost, "routed", usd(summary.estimated_cost_usd), usd(summary.actual_cost_usd),
                 f"{summary.expected_accuracy:.3f}")
    _add_row(cost, f"all to {summary.baseline_pair or '-'} (most accurate)", usd(summary.baseline_estimated_cost_usd),
                 usd(summary.baseline_actual_cost_usd), f"{summary.baseline_expected_accuracy:.3f}")
    cost.caption = f"routing saved {summary.savings_fraction:.0%} of the actual cost against the most accurate pair"

    outcome = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "-"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items())) or "none"
    totals = Text(
        f"{summary.succeeded}/{summary.requests} requests completed; outcomes: {outcome}; errors: {errors}; "
        f"tokens: {summary.prompt_tokens} prompt, {summary.completion_tokens} output"
    )
    return Group(traffic, latency, cost, totals)


def comparison_view(comparison: Comparison) -> Group:
    """The before/after table: always the most accurate pair against routed, every figure from this run."""
    best, routed = comparison.figures[ALL_BEST], comparison.figures[ROUTED]
    table = Table(title=f"held-out graded items: always {comparison.best_pair} against routed "
                        f"(required accuracy {comparison.required_accuracy:.3f})")
    for column in ("", f"always {comparison.best_pair}", "routed", "routed / always"):
        table.add_column(column, justify="right")

    def ratio(new: float, old: float) -> str:
        return f"{new / old:.2f}x" if old else "-"

    def accuracy(figures: dict) -> str:
        low, high = figures["ci95"]
        return f"{figures['accuracy']:.3f} ({figures['correct']}/{figures['n']}; 95% CI {low:.3f}-{high:.3f})"

    difference = comparison.accuracy_difference
    _add_row(table, "accuracy vs references", accuracy(best), accuracy(routed),
             f"{difference['difference']:+.3f} (95% CI {difference['ci95'][0]:+.3f} to {difference['ci95'][1]:+.3f})")
    _add_row(table, "cost per 1M tokens", usd(best["cost_per_1m_usd"]), usd(routed["cost_per_1m_usd"]),
             ratio(routed["cost_per_1m_usd"], best["cost_per_1m_usd"]))
    _add_row(table, "cost of the run", usd(best["cost_usd"]), usd(routed["cost_usd"]),
             ratio(routed["cost_usd"], best["cost_usd"]))
    _add_row(table, "e2e latency p50", ms(best["p50_ms"]), ms(routed["p50_ms"]), ratio(routed["p50_ms"], best["p50_ms"]))
    _add_row(table, "e2e latency p99", ms(best["p99_ms"]), ms(routed["p99_ms"]), ratio(routed["p99_ms"], best["p99_ms"]))
    _add_row(table, "output tokens/s", f"{best['output_tokens_per_s']:.1f}", f"{routed['output_tokens_per_s']:.1f}",
             ratio(routed["output_tokens_per_s"], best["output_tokens_per_s"]))
    _add_row(table, "errors", str(best["errors"]), str(routed["errors"]), "")
    for task in sorted(best["accuracy_by_task"]):
        _add_row(table, f"accuracy on {task}", f"{best['accuracy_by_task'][task]:.3f}",
                 f"{routed['accuracy_by_task'].get(task, 0.0):.3f}", "")
    shares = Table(title="routed traffic per pair")
    for column in ("pair", "share of items"):
        shares.add_column(column, justify="right")
    for pair, share in routed["share_by_pair"].items():
        _add_row(shares, pair, f"{share:.0%}")
    return Group(table, shares)
