"""The README's headline figures, read from the committed result files, never typed by hand.

`python -m tools.readme_figures` prints the markdown table that README.md holds between
`<!-- headline-figures:start -->` and `<!-- headline-figures:end -->`, and `--write` puts it there;
tests/docs/test_readme.py fails when the two differ, so a benchmark or evaluation run is followed by `--write`. Each figure is the `figures` entry of
its source: `benchmarks/results/<name>.json` (written by `benchmarks/<name>.py`) or the classifier's
`tools/classifier_training/reports/evaluation.json` (written by `python -m tools.classifier_training.evaluate`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from tools.paths import REPO_ROOT

START_MARKER = "<!-- headline-figures:start -->"
END_MARKER = "<!-- headline-figures:end -->"
CLASSIFIER_REPORT = "tools/classifier_training/reports/evaluation.json"


@dataclass(frozen=True)
class Figure:
    """One row: what it measures, where it comes from (a JSON file under the repository root and its key in
    `figures`), its unit and the target it is held to ("–" when none)."""

    what: str
    source: str
    name: str
    unit: str
    target: str = "–"


HEADLINE = (
    Figure("Classifier: needs-strong-model ROC-AUC, GSM8K test split", CLASSIFIER_REPORT, "gsm8k_roc_auc", "0-1",
           "≥ 0.66"),
    Figure("Classifier: needs-strong-model ROC-AUC, MMLU test split", CLASSIFIER_REPORT, "mmlu_roc_auc", "0-1"),
    Figure("Classifier: weak-to-strong gap recovered (APGR), GSM8K", CLASSIFIER_REPORT, "gsm8k_apgr", "0-1",
           "≥ 0.66"),
    Figure("Classifier: weak-to-strong gap recovered (APGR), MMLU", CLASSIFIER_REPORT, "mmlu_apgr", "0-1", "≥ 0.66"),
    Figure("Classifier: intent macro-F1, test split", CLASSIFIER_REPORT, "intent_macro_f1", "0-1", "≥ 0.90"),
    Figure("Classifier: CLINC150 intent accuracy, probe on the encoder's vector, test split", CLASSIFIER_REPORT,
           "clinc150_accuracy", "0-1", "≥ 0.95"),
    Figure("Classifier: Banking77 intent accuracy, probe on the encoder's vector, test split", CLASSIFIER_REPORT,
           "banking77_accuracy", "0-1", "≥ 0.92"),
    Figure("Classifier: APGR routing between our own 0.5B and 1.5B w8a8 pairs, held out", CLASSIFIER_REPORT,
           "local_pairs_apgr", "0-1"),
    Figure("Classifier: largest score shift from wrapping a question (few-shot, system prompt, RAG)",
           CLASSIFIER_REPORT, "wrapping_score_shift_max", "0-1", "< 0.1"),
    Figure("Classifier: one classification in process, p50", "benchmarks/results/classifier.json",
           "inprocess_p50_ms", "ms", "≤ 1"),
    Figure("Classifier: one `Classify` call over gRPC, p50", "benchmarks/results/classifier.json",
           "grpc_p50_ms", "ms", "≤ 2"),
    Figure("Classifier: `ClassifyStream` classifications per second", "benchmarks/results/classifier.json",
           "stream_per_s", "1/s", "≥ 2000"),
    Figure("Router: latency added, 1 stream, classifier in the router, p50", "benchmarks/results/router_overhead.json",
           "added_p50_ms_1", "ms", "≤ 2"),
    Figure("Router: latency added, 1 stream, classifier in the router, p99", "benchmarks/results/router_overhead.json",
           "added_p99_ms_1", "ms", "≤ 6"),
    Figure("Gateway + router: latency added over the worker, 1 stream, p50", "benchmarks/results/gateway_overhead.json",
           "added_p50_ms_1", "ms", "≤ 3"),
    Figure("LiteLLM proxy in front of the gateway: latency it adds, 1 stream, p50",
           "benchmarks/results/gateway_overhead.json", "litellm_added_p50_ms_1", "ms", "≥ 10× the gateway's"),
    Figure("Gateway: routed requests/s, 32 concurrent streams", "benchmarks/results/gateway_overhead.json", "rps_32",
           "req/s", "≥ 500"),
    Figure("Floor: a pass-through gateway and router (no validation, routing or metrics): latency added, 1 stream, p50",
           "benchmarks/results/gateway_floor.json", "added_p50_ms_1_passthrough_gateway_passthrough_router", "ms"),
    Figure("Floor: a pass-through gateway and router: requests/s, 32 concurrent streams",
           "benchmarks/results/gateway_floor.json", "rps_32_passthrough_gateway_passthrough_router", "req/s"),
    Figure("Worker: gRPC over in-process output tokens/s, 64 streams", "benchmarks/results/worker_stream.json",
           "grpc_over_inprocess_tokens_per_s_64", "ratio", "≥ 0.90"),
    Figure("Batches, 2,000 requests through two consumer kill -9s and a Redis restart: requests lost",
           "benchmarks/results/batch.json", "lost", "requests", "0"),
    Figure("Batches: duplicated results", "benchmarks/results/batch.json", "duplicated", "requests", "0"),
    Figure("Batches: queue wait p99 at the design load (40 req/s)", "benchmarks/results/batch.json",
           "queue_wait_p99_ms", "ms", "< 2,000"),
    Figure("Batches: a burst of 1,000 drained in", "benchmarks/results/batch.json", "burst_drain_s", "s"),
    Figure("Real pairs, 200 held-out graded prompts: accuracy, always the most accurate pair",
           "benchmarks/results/routing_real.json", "accuracy_all_best", "0-1"),
    Figure("Real pairs, 200 held-out graded prompts: accuracy, routed", "benchmarks/results/routing_real.json",
           "accuracy_routed", "0-1", "≥ all-best − 0.01"),
    Figure("Real pairs: routed cost over always-most-accurate cost", "benchmarks/results/routing_real.json",
           "cost_ratio_routed_to_all_best", "ratio", "≤ 0.50"),
    Figure("Real pairs: e2e latency p99, always the most accurate pair", "benchmarks/results/routing_real.json",
           "p99_ms_all_best", "ms"),
    Figure("Real pairs: e2e latency p99, routed", "benchmarks/results/routing_real.json", "p99_ms_routed", "ms"),
)


def _shown(value: float) -> str:
    if isinstance(value, int):  # counts (requests lost, duplicated) stay whole
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"


def headline_table() -> str:
    """The headline figures as a markdown table, one row per `HEADLINE` entry, values to 3 significant digits
    (whole numbers from 100 up; counts as they are), ending with a newline.

    Raises:
        FileNotFoundError: a source file is missing.
        KeyError: a source has no such figure (renamed or not measured).
    """
    figures = {source: json.loads((REPO_ROOT / source).read_text())["figures"]
               for source in {figure.source for figure in HEADLINE}}
    rows = ["| figure | value | unit | target | source (`figures` entry) |", "|---|---|---|---|---|"]
    rows += [f"| {f.what} | {_shown(figures[f.source][f.name])} | {f.unit} | {f.target} | `{f.source}` `{f.name}` |"
             for f in HEADLINE]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Prints `headline_table()` to stdout, or with `--write` replaces the README's table with it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the table between the README's markers")
    if not parser.parse_args(argv).write:
        print(headline_table(), end="")
        return
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    start = text.index(START_MARKER) + len(START_MARKER) + 1
    readme.write_text(text[:start] + headline_table() + text[text.index(END_MARKER):])


if __name__ == "__main__":
    main()
