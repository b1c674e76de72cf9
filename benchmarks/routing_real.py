"""Routing on real model-quantization pairs against always using the most accurate one, graded on held-out prompts.

    .venv/bin/python -m benchmarks.routing_real [--config deploy/mesh/real.yaml]
        [--heldout benchmarks/data/routing-heldout.jsonl] [--required-accuracy auto|X] [--tolerance 0.01]
        [--concurrency 4] [--limit N]

Brings the mesh of `--config` up (`tools.mesh.mesh.Mesh`: the real checkpoints, and profiles the profiler measured on
`deploy/profiler/real-eval.jsonl`, measured now or reused while their provenance matches), then runs the comparison
of `tools.mesh.comparison` on the held-out items (`benchmarks/data/routing-heldout.jsonl`, built by
`tools.profiler.build_real_eval`, disjoint from the profiling items): the threshold chosen on the profiling set, then
the all-best arm and the routed arm one after the other on the same mesh.

Writes `benchmarks/results/routing_real.json` (`figures`: accuracy_all_best, accuracy_routed,
cost_per_1m_all_best_usd, cost_per_1m_routed_usd, p99_ms_all_best, p99_ms_routed, n_prompts; `details`: both arms'
figures with Wilson intervals, the paired difference, the threshold replay, each pair's profile figures),
`benchmarks/results/routing_real_answers.jsonl` (every graded answer of both arms, to re-grade) and
`benchmarks/results/routing_real.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.results_io import RESULTS_DIR, write_results
from core.profiles import parse_profile_document
from tools.mesh.comparison import ALL_BEST, ROUTED, compare, most_accurate, overall_accuracy, write_chart
from tools.mesh.mesh import Mesh
from tools.mesh.mesh_config import load_mesh_config
from tools.mesh.profiling import provenance_path
from tools.paths import REPO_ROOT
from tools.profiler.eval_set import EvalSetError, load_eval_set

DEFAULT_CONFIG = REPO_ROOT / "deploy" / "mesh" / "real.yaml"
DEFAULT_HELDOUT = REPO_ROOT / "benchmarks" / "data" / "routing-heldout.jsonl"


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _progress(label: str, done: int, total: int) -> None:
    if done % 20 == 0 or done == total:
        print(f"  {label}: {done}/{total}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT)
    parser.add_argument("--required-accuracy", default="auto", help="auto (chosen on the profiling set) or 0..1")
    parser.add_argument("--tolerance", type=float, default=0.01, help="accuracy loss allowed when choosing, 0..1")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="only the first N held-out items")
    args = parser.parse_args(argv)
    try:
        heldout = load_eval_set(args.heldout)[: args.limit]
    except EvalSetError as exc:
        print(f"error: {exc}")
        return 2
    config = load_mesh_config(args.config)
    if config.profiles.file is None or config.profiles.measure is None:
        print(f"error: {args.config}: the comparison needs profiles.file and profiles.measure (graded profiles)")
        return 2
    required = None if args.required_accuracy == "auto" else float(args.required_accuracy)
    started = time.perf_counter()
    with Mesh(config) as endpoints:
        mesh_up_s = time.perf_counter() - started
        profile_path = Path(config.profiles.file)
        document = parse_profile_document(profile_path.read_text())
        report = json.loads(profile_path.with_suffix(".report.json").read_text())
        best = most_accurate(document)
        best_address = next(w.address for w in endpoints.workers
                            if (w.model_id, w.quantization) == (best.model_id, best.quantization.value))
        comparison = asyncio.run(compare(
            endpoints.router_address, best_address, document, report, load_eval_set(config.profiles.measure.eval),
            heldout, concurrency=args.concurrency, tolerance=args.tolerance, required_accuracy=required,
            progress=_progress))
    details = {
        "config": _relative(args.config), "heldout": _relative(args.heldout),
        "profiles": json.loads(provenance_path(profile_path).read_text()),
        "most_accurate_pair": comparison.best_pair, "required_accuracy": comparison.required_accuracy,
        "tolerance": args.tolerance, "threshold_replay_on_profiling_set": comparison.threshold_replay,
        "concurrency": args.concurrency, "mesh_up_s": mesh_up_s,
        ALL_BEST: comparison.figures[ALL_BEST], ROUTED: comparison.figures[ROUTED],
        "accuracy_difference_routed_minus_all_best": comparison.accuracy_difference,
        "pairs": {pair.name: {"accuracy_profiling_set": overall_accuracy(pair),
                              "cost_per_1m_output_tokens_usd": pair.cost_per_1m_tokens_usd,
                              "cost_per_1m_input_tokens_usd": pair.cost_per_1m_input_tokens_usd,
                              "throughput_tokens_per_s": pair.throughput_tokens_per_s,
                              "graded_by_tier": {tier.value: graded.model_dump()
                                                 for tier, graded in pair.graded_by_tier.items()}}
                  for pair in document.pairs},
        "sources": "GSM8K (MIT), CLINC150 (CC BY 3.0), Banking77 (CC BY 4.0); see data/README.md",
    }
    path = write_results("routing_real", comparison.headline(), details)
    answers_path = RESULTS_DIR / "routing_real_answers.jsonl"
    answers_path.write_text("".join(json.dumps(asdict(answer), ensure_ascii=False) + "\n"
                                    for arm in (ALL_BEST, ROUTED) for answer in comparison.answers[arm]),
                            encoding="utf-8")
    write_chart(document, report, comparison, RESULTS_DIR / "routing_real.png")
    print(json.dumps(comparison.headline(), indent=2))
    print(f"wrote {_relative(path)}, {_relative(answers_path)} and benchmarks/results/routing_real.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
