"""`quantmesh profile` (= `python -m tools.profiler`): measure running workers and write (and publish) profiles.

    python -m tools.profiler --worker HOST:PORT [--worker HOST:PORT ...] --eval EVAL.jsonl
        --price-per-hour-usd PRICE [PRICE ...] [--concurrency 1,2,4] [--requests-per-level 8]
        [--load-output-tokens 32] [--max-output-tokens 64] [--prompt-tokens 64,256,1024]
        [--output profiles.json] [--report-json FILE] [--chart FILE.png] [--publish ROUTER_HOST:PORT]

Steps: parse the eval file (every malformed line is reported with its number), check every worker is reachable and
SERVING, profile each worker in turn (progress bars on stderr), derive the profiles with the router's schema, write
the document (atomically), the JSON report and the PNG chart, print the tables, then publish if asked.
All-or-nothing: if any worker fails, nothing is written and nothing is published.

Exit codes: 0 success; 1 a worker, the run or the publication failed; 2 bad input (options, eval file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.classifier_model.reference_tokenizer import DEFAULT_PATH as REFERENCE_TOKENIZER_PATH
from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from core.profiles import ProfileDocument
from core.vocabulary import ComplexityTier
from tools.profiler import load_prompts
from tools.profiler.chart import write_chart
from tools.profiler.document import PairFigures, pair_figures, profile_document
from tools.profiler.driver import WorkerDriver
from tools.profiler.eval_set import EvalItem, EvalSetError, load_eval_set
from tools.profiler.publish import PublishError, publish_document
from tools.profiler.report import (
    accuracy_table,
    levels_table,
    max_model_len_advice,
    report_dict,
    summary_table,
)
from tools.profiler.run import ProfileRunError, RunConfig, preflight, profile_worker, requests_at

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser(prog: str = "quantmesh profile") -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", dest="workers", action="append", required=True, metavar="HOST:PORT",
                        help="an InferenceWorker to profile (repeat for several; one per model-quantization pair)")
    parser.add_argument("--endpoint", dest="endpoints", nargs="+", action="extend", default=[], metavar="ENDPOINT",
                        help="what the published profile names as each worker's endpoint, one per --worker in order "
                        "(default: the --worker address); for example dns:///<headless service>:50053, so that the "
                        "router reaches every replica of the pool while the profiler measures one")
    parser.add_argument("--eval", dest="eval_path", type=Path, required=True, metavar="FILE.jsonl",
                        help="eval set JSONL (format: tools/profiler/eval_set.py; example deploy/profiler/)")
    # "extend": the flag may repeat, so that a manifest can append one "--worker=..." and its
    # "--price-per-hour-usd=..." per pair (deploy/k8s overlays).
    parser.add_argument("--price-per-hour-usd", type=float, nargs="+", action="extend", required=True, metavar="USD",
                        help="instance price per hour: one for every worker, or one per --worker in order (the flag "
                        "may repeat; its values add up in order)")
    parser.add_argument("--concurrency", type=_int_list, default=defaults.concurrency_levels, metavar="1,2,4",
                        help="concurrency levels of the latency sweep, ascending (default %(default)s)")
    parser.add_argument("--requests-per-level", type=int, default=defaults.requests_per_level,
                        help="requests per concurrency level (default %(default)s)")
    parser.add_argument("--load-output-tokens", type=int, default=defaults.load_output_tokens,
                        help="max_output_tokens of each latency request (default %(default)s)")
    parser.add_argument("--max-output-tokens", type=int, default=defaults.default_max_output_tokens,
                        help="output budget of eval items that set none (default %(default)s)")
    parser.add_argument("--prompt-tokens", type=_int_list, default=None, metavar="64,256,1024",
                        help="latency prompts of these lengths (reference tokens, drawn uniformly) instead of the "
                             "eval set's own prompts")
    parser.add_argument("--accuracy-concurrency", type=int, default=defaults.accuracy_concurrency,
                        help="eval items in flight during the accuracy run (default %(default)s)")
    parser.add_argument("--warmup-requests", type=int, default=defaults.warmup_requests,
                        help="unmeasured requests sent to each worker first (default %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s,
                        help="deadline of each worker RPC, s (default %(default)s)")
    parser.add_argument("--connect-timeout-s", type=float, default=defaults.connect_timeout_s,
                        help="deadline of each worker's preflight health check, s (default %(default)s)")
    parser.add_argument("--reference-tokenizer", type=Path, default=REFERENCE_TOKENIZER_PATH,
                        help="reference tokenizer JSON (default: the classifier's shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of latency prompts (default 0)")
    parser.add_argument("--output", type=Path, default=Path("profiles.json"),
                        help="profile document to write (default %(default)s)")
    parser.add_argument("--report-json", type=Path, default=None,
                        help="every measured figure as JSON (default: OUTPUT with .report.json)")
    parser.add_argument("--chart", type=Path, default=None,
                        help="PNG chart of latency vs throughput (default: OUTPUT with .png)")
    parser.add_argument("--publish", metavar="ROUTER_HOST:PORT", default=None,
                        help="publish the document through this router's admin RPC (validated, versioned, atomic)")
    parser.add_argument("--expected-version", type=int, default=0,
                        help="with --publish: only if the current version is this (0: regardless)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CronJobs)")
    return parser


def _write_atomically(path: Path, text: str) -> None:
    """Writes via a temporary file in the same directory and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a profile document is for every reader
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _missing_tiers(items: Sequence[EvalItem]) -> list[str]:
    present = {item.tier for item in items}
    return [tier.value for tier in ComplexityTier.known() if tier not in present]


async def _profile_all(args: argparse.Namespace, config: RunConfig, items: list[EvalItem],
                       prompts: list, prices: list[float], tokenizer: ReferenceTokenizer,
                       err: Console) -> list[PairFigures]:
    drivers = [WorkerDriver(address, config.timeout_s) for address in args.workers]
    try:
        infos = await preflight(drivers, config.connect_timeout_s)
        per_worker = config.warmup_requests + len(items) + sum(
            requests_at(config, level) for level in config.concurrency_levels)
        figures: list[PairFigures] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, disable=args.no_progress, transient=False) as progress:
            tasks = {driver.address: progress.add_task(f"{driver.address} waiting", total=per_worker)
                     for driver in drivers}
            for driver, info, price in zip(drivers, infos, prices, strict=True):
                task = tasks[driver.address]
                name = f"{info.pair.model_id} @ {driver.address}"

                def advance(stage: str, done: int, task=task, name=name) -> None:
                    progress.update(task, advance=done, description=f"{name} {stage}")

                progress.update(task, description=f"{name} warm-up")
                measurement = await profile_worker(driver, info, items, prompts, config, tokenizer, advance)
                progress.update(task, advance=config.warmup_requests, description=f"{name} done")
                try:
                    figures.append(pair_figures(measurement, price))
                except (ValueError, ValidationError) as exc:
                    raise ProfileRunError(f"worker {driver.address}: the measured figures are not a valid "
                                          f"profile: {exc}") from exc
        return figures
    finally:
        await asyncio.gather(*(driver.close() for driver in drivers))


def main(argv: list[str] | None = None) -> int:
    """Runs `quantmesh profile`; returns the exit code (see the module docstring)."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per error, whole in logs and pipes
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = RunConfig(
            concurrency_levels=args.concurrency, requests_per_level=args.requests_per_level,
            load_output_tokens=args.load_output_tokens, default_max_output_tokens=args.max_output_tokens,
            accuracy_concurrency=args.accuracy_concurrency, warmup_requests=args.warmup_requests,
            timeout_s=args.timeout_s, connect_timeout_s=args.connect_timeout_s,
        )
    except ValueError as exc:
        err.print("[red]error:[/]", escape(str(exc)))
        return EXIT_USAGE
    if len(args.price_per_hour_usd) not in (1, len(args.workers)):
        err.print(f"[red]error:[/] --price-per-hour-usd: give one price or one per worker "
                  f"({len(args.workers)}), got {len(args.price_per_hour_usd)}")
        return EXIT_USAGE
    if any(price <= 0 for price in args.price_per_hour_usd):
        err.print("[red]error:[/] --price-per-hour-usd: prices must be positive")
        return EXIT_USAGE
    prices = args.price_per_hour_usd * (len(args.workers) if len(args.price_per_hour_usd) == 1 else 1)
    if args.endpoints and len(args.endpoints) != len(args.workers):
        err.print(f"[red]error:[/] --endpoint: give one per worker ({len(args.workers)}), got {len(args.endpoints)}")
        return EXIT_USAGE
    try:
        items = load_eval_set(args.eval_path)
    except EvalSetError as exc:
        err.print(f"[red]error:[/] {args.eval_path}: {len(exc.errors)} problem(s); no item was skipped, fix them:",
                  markup=True)
        for problem in exc.errors:
            err.print(f"  {problem}", markup=False)
        return EXIT_USAGE
    missing = _missing_tiers(items)
    if missing:
        err.print(f"[red]error:[/] {args.eval_path}: no item of tier {', '.join(missing)}: every tier's accuracy "
                  "must be measured (the router's profile has one per tier)")
        return EXIT_USAGE
    try:
        tokenizer = ReferenceTokenizer(args.reference_tokenizer)
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises bare Exception subclasses
        err.print(f"[red]error:[/] --reference-tokenizer {args.reference_tokenizer}:", escape(str(exc)))
        return EXIT_USAGE
    count = max(requests_at(config, level) for level in config.concurrency_levels) * len(config.concurrency_levels)
    try:
        prompts = (load_prompts.synthetic(args.prompt_tokens, count, [item.reference_text for item in items],
                                          tokenizer, args.seed)
                   if args.prompt_tokens else load_prompts.from_eval_set(items, count, args.seed))
    except ValueError as exc:
        err.print("[red]error:[/] --prompt-tokens:", escape(str(exc)))
        return EXIT_USAGE

    try:
        figures = asyncio.run(_profile_all(args, config, items, prompts, prices, tokenizer, err))
        document = profile_document(figures)
        if args.endpoints:  # the pairs are in --worker order
            document = ProfileDocument.model_validate({**document.model_dump(mode="json"), "pairs": [
                {**pair.model_dump(mode="json"), "endpoint": endpoint}
                for pair, endpoint in zip(document.pairs, args.endpoints, strict=True)]})
    except (ProfileRunError, ValidationError) as exc:
        err.print("[red]profile failed:[/]", escape(str(exc)))
        err.print("nothing was written or published")
        return EXIT_FAILED

    report_path = args.report_json or args.output.with_suffix(".report.json")
    chart_path = args.chart or args.output.with_suffix(".png")
    run = {"eval_path": str(args.eval_path), "eval_items": len(items), "workers": args.workers,
           "price_per_hour_usd": prices, "concurrency_levels": list(config.concurrency_levels),
           "requests_per_level": config.requests_per_level, "load_output_tokens": config.load_output_tokens,
           "prompt_tokens": list(args.prompt_tokens) if args.prompt_tokens else "eval set",
           "reference_tokenizer": str(args.reference_tokenizer)}
    _write_atomically(args.output, json.dumps(json.loads(document.to_json()), indent=2) + "\n")
    _write_atomically(report_path, json.dumps(report_dict(figures, run), indent=2) + "\n")
    write_chart(figures, chart_path)
    for table in (summary_table(figures), levels_table(figures), accuracy_table(figures)):
        out.print(table)
    for advice in max_model_len_advice(figures):
        out.print(advice, markup=False)
    out.print(f"profile document: {args.output}\nreport: {report_path}\nchart: {chart_path}")
    if args.publish:
        return _publish(args, document, out, err)
    return EXIT_OK


def _publish(args: argparse.Namespace, document: ProfileDocument, out: Console, err: Console) -> int:
    try:
        version = asyncio.run(publish_document(args.publish, document, expected_version=args.expected_version))
    except PublishError as exc:
        err.print("[red]publish failed:[/]", escape(str(exc)))
        return EXIT_FAILED
    out.print(f"published as version {version} through {args.publish}")
    return EXIT_OK

