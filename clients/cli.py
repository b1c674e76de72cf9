"""The `quantmesh` command line.

    quantmesh serve worker|classifier|router        run one service in this process (= python -m services.<svc>)
    quantmesh up --config deploy/mesh/local.yaml [--run-sample]
                                                   bring the mesh up; with --run-sample run the main job and exit
    quantmesh chat                                 interactive chat; /route shows the last decision, Ctrl-C cancels
    quantmesh route "prompt"                       the routing decision and every candidate's rejection reasons
    quantmesh profiles get|validate FILE|publish FILE
    quantmesh batch submit FILE.jsonl --out RESULTS.jsonl [--no-wait]
                                                   an OpenAI-format batch file: queue it, show progress, write results
    quantmesh batch status|results|cancel BATCH_ID [--out RESULTS.jsonl]

Global options (before or after the command): --router host:port (env QUANTMESH_ROUTER_ADDRESS), --budget-ms,
--accuracy, --mode, --max-output-tokens, and for a secured router --token (env QUANTMESH_TOKEN), --tls-ca,
--tls-cert, --tls-key, --tls-server-name. Exit codes: 0 success, 1 failure (an RPC error is printed as
`STATUS: message`), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.text import Text

from clients.credentials import TlsOptions
from clients.messages import ChatMessage, Requirements, RouteDecision, Sampling, TokenChunk
from clients.sdk import QuantmeshClient
from core.errors import QuantmeshError
from core.vocabulary import ChatRole, RoutingMode
from tools.mesh.mesh_config import MeshConfig, SampleConfig

if TYPE_CHECKING:
    from tools.mesh.mesh import MeshEndpoints

DEFAULT_ROUTER_ADDRESS = "127.0.0.1:50051"
DEFAULT_REQUIREMENTS = Requirements(max_output_tokens=64, latency_budget_ms=5000)
SERVICES = ("worker", "classifier", "router")
# Statuses that are the router enforcing a budget, not a broken run (see `up --run-sample`).
BUDGET_STATUSES = frozenset({"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})

# Tables stay readable when the output is a file or a pipe (rich assumes 80 columns there; COLUMNS still wins).
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(highlight=False, log_path=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line each in logs and pipes


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    """The options every command accepts; on subcommands their defaults are suppressed so the top level's win."""
    parser = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    address = os.environ.get("QUANTMESH_ROUTER_ADDRESS", DEFAULT_ROUTER_ADDRESS)
    parser.add_argument("--router", default=default(address),
                        help=f"router host:port (env QUANTMESH_ROUTER_ADDRESS; now {address})")
    parser.add_argument("--budget-ms", type=int, default=default(None),
                        help=f"latency budget in ms (default {DEFAULT_REQUIREMENTS.latency_budget_ms})")
    parser.add_argument("--accuracy", type=float, default=default(None),
                        help="required accuracy for the query's tier, in [0, 1] (default 0)")
    parser.add_argument("--mode", choices=[mode.value for mode in RoutingMode.known()], default=default(None),
                        help="cheapest (the cheapest pair meeting every constraint; the default), or the weighted utility of "
                             "interactive (latency first) or batch (cost first)")
    parser.add_argument("--max-output-tokens", type=int, default=default(None),
                        help=f"tokens to generate at most (default {DEFAULT_REQUIREMENTS.max_output_tokens})")
    parser.add_argument("--token", default=default(os.environ.get("QUANTMESH_TOKEN")),
                        help="bearer token for a router with caller auth on (env QUANTMESH_TOKEN)")
    parser.add_argument("--tls-ca", type=Path, default=default(None), help="CA file (PEM): use TLS to the router")
    parser.add_argument("--tls-cert", type=Path, default=default(None), help="client certificate (PEM), mutual TLS")
    parser.add_argument("--tls-key", type=Path, default=default(None), help="client key (PEM), with --tls-cert")
    parser.add_argument("--tls-server-name", default=default(None),
                        help="name to check in the router's certificate (default: the --router host)")
    return parser


def connect(args: argparse.Namespace) -> QuantmeshClient:
    """A client of `args.router` with the token and TLS options given on the command line."""
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_server_name:
        tls = TlsOptions(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key,
                         server_name=args.tls_server_name)
    return QuantmeshClient(args.router, token=args.token, tls=tls)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantmesh", description=__doc__.split("\n\n")[0],
                                     parents=[_global_options(defaults=True)])
    sub_options = _global_options(defaults=False)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[sub_options], help="run one service in this process")
    serve.add_argument("service", choices=SERVICES)

    up = commands.add_parser("up", parents=[sub_options], help="bring the mesh up (Ctrl-C stops it)")
    up.add_argument("--config", type=Path, default=Path("deploy/mesh/local.yaml"), help="mesh YAML (%(default)s)")
    up.add_argument("--run-sample", action="store_true", help="run the main job on held-out prompts, then exit")
    up.add_argument("--data-dir", type=Path, help="evaluation data folder (default: the config's, data/ in the repository)")
    up.add_argument("--per-source", type=int, help="prompts per source (overrides the config's counts)")
    up.add_argument("--results-json", type=Path, help="also write the per-prompt results and summary here")

    chat = commands.add_parser("chat", parents=[sub_options], help="interactive chat through the router")
    chat.add_argument("--system", help="a system message opening the conversation")
    chat.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    chat.add_argument("--raw", action="store_true",
                      help="send each line as a raw prompt (completion, no chat template or history)")

    route = commands.add_parser("route", parents=[sub_options], help="show the routing decision (a dry run)")
    route.add_argument("prompt")

    # Listed for --help only: `main` hands everything after `profile` to the profiler's own parser.
    commands.add_parser("profile", add_help=False,
                        help="measure model-quantization pairs and build (or publish) their profiles")

    commands.add_parser("models", add_help=False,
                        help="fetch the pinned real models and convert them into checkpoints vLLM serves")
    commands.add_parser("quantize", add_help=False,
                        help="write a model's w8a8 / w4a16 pairs, each published once its golden check passes")

    profiles = commands.add_parser("profiles", parents=[sub_options], help="read, validate or publish profiles")
    actions = profiles.add_subparsers(dest="action", required=True)
    get = actions.add_parser("get", parents=[sub_options], help="the profile document in use")
    get.add_argument("--json", action="store_true", help="print the raw JSON document")
    validate = actions.add_parser("validate", parents=[sub_options], help="validate a document (dry run)")
    validate.add_argument("file", type=Path)
    publish = actions.add_parser("publish", parents=[sub_options], help="publish a document as a new version")
    publish.add_argument("file", type=Path)
    publish.add_argument("--expected-version", type=int, default=0,
                         help="publish only if the current version is this (0: regardless)")

    batch = commands.add_parser("batch", parents=[sub_options], help="submit, follow, read or cancel a batch")
    batch_actions = batch.add_subparsers(dest="action", required=True)
    submit = batch_actions.add_parser("submit", parents=[sub_options],
                                      help="queue an OpenAI-format batch JSONL file (all of it, or nothing)")
    submit.add_argument("file", type=Path)
    submit.add_argument("--out", type=Path, help="write the results here as JSONL once the batch is finished")
    submit.add_argument("--no-wait", action="store_true", help="print the batch id and exit")
    for name, text in (("status", "the batch's status and counts"), ("results", "write the results as JSONL"),
                       ("cancel", "cancel the requests without a result yet")):
        action = batch_actions.add_parser(name, parents=[sub_options], help=text)
        action.add_argument("batch_id")
        if name == "results":
            action.add_argument("--out", type=Path, help="output file (default: standard output)")
    return parser


def requirements_from(args: argparse.Namespace, base: Requirements = DEFAULT_REQUIREMENTS) -> Requirements:
    """`base` with the global options the user gave."""
    return Requirements(
        max_output_tokens=args.max_output_tokens if args.max_output_tokens is not None else base.max_output_tokens,
        latency_budget_ms=args.budget_ms if args.budget_ms is not None else base.latency_budget_ms,
        required_accuracy=args.accuracy if args.accuracy is not None else base.required_accuracy,
        mode=RoutingMode(args.mode) if args.mode is not None else base.mode,
    )


def serve(args: argparse.Namespace) -> int:
    """Runs `services.<service>` as `python -m` would (its `__main__` guard included: vLLM spawns processes)."""
    runpy.run_module(f"services.{args.service}", run_name="__main__", alter_sys=True)
    return 0


def route(args: argparse.Namespace) -> int:
    from clients.render import decision_view

    with connect(args) as client:
        decision = client.route(args.prompt, requirements_from(args))
    console.print(decision_view(decision))
    return 0


def profiles(args: argparse.Namespace) -> int:
    from clients.render import profiles_view

    with connect(args) as client:
        if args.action == "get":
            document = client.profiles.get()
            if args.json:
                console.print_json(document.document_json)
            else:
                console.print(profiles_view(document))
            return 0
        text = args.file.read_text()
        if args.action == "validate":
            result = client.profiles.validate(text)
            if result.valid:
                console.print(f"{args.file}: valid")
                return 0
            console.print(f"{args.file}: invalid")
            for error in result.errors:
                console.print(Text(f"  - {error}"))
            return 1
        version = client.profiles.publish(text, expected_version=args.expected_version)
        console.print(f"{args.file}: published as version {version}")
        return 0


def batch(args: argparse.Namespace) -> int:
    """`batch submit` reads and checks the whole file first (every bad line is reported by number, nothing is
    submitted), queues it, follows it with a progress bar, and writes the results; budget: --budget-ms."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from clients.batch_file import BatchFileError, read_batch_file

    with connect(args) as client:
        if args.action == "submit":
            try:
                requests = read_batch_file(args.file)
            except BatchFileError as exc:
                err_console.print(Text(str(exc)))
                return 2
            created = client.batches.create(requests, latency_budget_ms=args.budget_ms or 0)
            console.print(f"batch {created.batch_id}: {created.total} requests queued")
            if args.no_wait:
                return 0
            with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err_console) as progress:
                task = progress.add_task(created.batch_id[:8], total=created.total)
                for status in client.batches.watch(created.batch_id):
                    progress.update(task, completed=status.done)
            batch_id = created.batch_id
        elif args.action == "cancel":
            status = client.batches.cancel(args.batch_id)
            console.print(f"batch {status.batch_id}: {status.status.value}, {status.cancelled} cancelled")
            return 0
        else:
            batch_id = args.batch_id
        status = client.batches.get(batch_id)
        console.print(f"batch {status.batch_id}: {status.status.value}, {status.succeeded} succeeded, "
                      f"{status.failed} failed, {status.cancelled} cancelled of {status.total}")
        if args.action == "status" or (args.action == "submit" and args.out is None):
            return 0 if status.failed == 0 else 1
        _write_results(client, batch_id, args.out)
        return 0 if status.failed == 0 else 1


def _write_results(client: QuantmeshClient, batch_id: str, out: Path | None) -> None:
    from clients.batch_file import result_line

    lines = (json.dumps(result_line(batch_id, result)) + "\n" for result in client.batches.results(batch_id))
    if out is None:
        sys.stdout.writelines(lines)
        return
    partial = out.with_name(out.name + ".partial")  # a reader never sees half a results file
    with partial.open("w", encoding="utf-8") as handle:
        handle.writelines(lines)
    partial.replace(out)
    console.print(f"results: {out}")


def chat(args: argparse.Namespace) -> int:
    """A chat loop: tokens are printed as they arrive; Ctrl-C cancels the stream in flight (the router cancels the
    worker call, the worker aborts the engine request); Ctrl-C or Ctrl-D at the prompt exits."""
    from clients.render import decision_view, ms, usd

    requirements = requirements_from(args)
    sampling = Sampling(temperature=args.temperature)
    history: list[ChatMessage] = [ChatMessage(ChatRole.SYSTEM, args.system)] if args.system else []
    last_decision: RouteDecision | None = None
    console.print(f"quantmesh chat via {args.router} (budget {requirements.latency_budget_ms} ms, "
                  f"max {requirements.max_output_tokens} tokens). /route: last decision, /reset, /quit; "
                  "Ctrl-C cancels a reply.")
    with connect(args) as client:
        while True:
            try:
                line = console.input("[bold]you> [/bold]").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return 0
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return 0
            if line == "/reset":
                history = history[:1] if args.system else []
                continue
            if line == "/route":
                console.print(decision_view(last_decision) if last_decision else "no request yet")
                continue
            turn_start = len(history)
            history.append(ChatMessage(ChatRole.USER, line))
            stream = client.generate(line if args.raw else list(history), requirements, sampling=sampling)
            try:
                for event in stream:
                    if isinstance(event, RouteDecision):
                        last_decision = event
                        console.print(Text(f"[{event.chosen or '-'} {event.outcome.value}]", style="dim"))
                    elif isinstance(event, TokenChunk):
                        sys.stdout.write(event.text)
                        sys.stdout.flush()
                if args.raw:  # a raw prompt is not a conversation
                    del history[turn_start:]
                else:
                    history.append(ChatMessage(ChatRole.ASSISTANT, stream.text))
                summary = stream.summary
                if summary is not None:
                    console.print(Text(f"\n{summary.served_by} · TTFT {ms(summary.ttft_ms)} · e2e "
                                       f"{ms(summary.e2e_latency_ms)} · {summary.usage.completion_tokens} tokens · "
                                       f"{summary.finish_reason.value} · {usd(summary.actual_cost_usd)}", style="dim"))
            except KeyboardInterrupt:  # also when it lands after the last token: the turn is dropped either way
                stream.cancel()
                del history[turn_start:]
                console.print(Text("\n[cancelled]", style="yellow"))
            except QuantmeshError as exc:
                del history[turn_start:]
                console.print(Text.assemble("\n", (exc.code.name, "red"), f": {exc.message}"))


def _sample_with_overrides(sample: SampleConfig, args: argparse.Namespace) -> SampleConfig:
    """The config's sample with the command line's data dir, per-source count and requirement options."""
    requirements = {name: value for name, value in (
        ("max_output_tokens", args.max_output_tokens), ("latency_budget_ms", args.budget_ms),
        ("required_accuracy", args.accuracy), ("mode", args.mode)) if value is not None}
    updates: dict[str, object] = {"requirements": sample.requirements.model_copy(update=requirements)}
    if args.accuracy is not None:  # an explicit --accuracy applies to every source
        updates["required_accuracy_by_source"] = {}
    if args.data_dir is not None:
        updates["data_dir"] = args.data_dir
    if args.per_source is not None:
        updates["counts"] = {source: args.per_source for source in sample.counts}
    return SampleConfig.model_validate(sample.model_copy(update=updates).model_dump())


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _run_comparison(config: MeshConfig, endpoints: MeshEndpoints, results_json: Path | None) -> int:
    """The main job on real pairs: the before/after comparison (tools/mesh/comparison.py), its table and PNG.
    Returns 1 when a request failed, else 0."""
    from clients.render import comparison_view
    from core.profiles import parse_profile_document
    from tools.mesh.comparison import ALL_BEST, ROUTED, compare, most_accurate, write_chart
    from tools.profiler.eval_set import load_eval_set

    comparison_config = config.comparison
    measure = config.profiles.measure
    assert comparison_config is not None and measure is not None and config.profiles.file is not None  # validated
    profile_path = Path(config.profiles.file)
    document = parse_profile_document(profile_path.read_text())
    report = json.loads(profile_path.with_suffix(".report.json").read_text())
    heldout = load_eval_set(comparison_config.heldout)[: comparison_config.limit]
    best = most_accurate(document)
    best_address = next(w.address for w in endpoints.workers
                        if (w.model_id, w.quantization) == (best.model_id, best.quantization.value))
    console.rule(f"main job: {len(heldout)} held-out graded items, always the most accurate pair, then routed")

    def progress(label: str, done: int, total: int) -> None:
        if done % 5 == 0 or done == total:
            console.log(f"{label}: {done}/{total} answered")

    comparison = asyncio.run(compare(
        endpoints.router_address, best_address, document, report, load_eval_set(measure.eval), heldout,
        concurrency=comparison_config.concurrency, tolerance=comparison_config.tolerance,
        required_accuracy=comparison_config.required_accuracy, progress=progress,
        log=lambda message: console.log(Text(message))))
    console.rule("summary")
    console.print(comparison_view(comparison))
    chart = endpoints.log_dir / "accuracy_vs_cost.png"
    write_chart(document, report, comparison, chart)
    console.print(f"chart: {chart}")
    if results_json is not None:
        results_json.write_text(json.dumps({
            "figures": comparison.headline(), "required_accuracy": comparison.required_accuracy,
            "arms": comparison.figures, "accuracy_difference": comparison.accuracy_difference,
            "answers": {arm: [dataclasses.asdict(a) for a in comparison.answers[arm]] for arm in (ALL_BEST, ROUTED)},
        }, indent=2))
    failed = sum(comparison.figures[arm]["errors"] for arm in (ALL_BEST, ROUTED))
    return 1 if failed else 0


def up(args: argparse.Namespace) -> int:
    """Brings the mesh up; with --run-sample runs the main job (the comparison when the config has one, else the
    sample), prints its summary, stops the mesh and exits with its code (`_run_comparison`, `_run_sample`);
    otherwise serves until Ctrl-C or SIGTERM."""
    from clients.render import endpoints_view
    from tools.mesh.mesh import Mesh
    from tools.mesh.mesh_config import load_mesh_config

    try:
        config = load_mesh_config(args.config)
    except (OSError, ValueError) as exc:
        err_console.print(Text.assemble(("bad mesh config", "red"), f": {exc}"))
        return 2
    sample = _sample_with_overrides(config.sample, args)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    mesh = Mesh(config, log=lambda message: console.log(Text(message)))
    try:
        with mesh as endpoints:
            console.print(endpoints_view(endpoints))
            if not args.run_sample:
                console.print("serving; Ctrl-C stops the mesh")
                while True:
                    time.sleep(3600)
            code = (_run_comparison(config, endpoints, args.results_json) if config.comparison is not None
                    else _run_sample(endpoints, sample, args.results_json))
            console.log("stopping the mesh")
        console.log("mesh stopped")
    except KeyboardInterrupt:
        console.log("interrupted: mesh stopped")
        return 130
    except (RuntimeError, ValueError, QuantmeshError) as exc:
        err_console.print(Text.assemble(("quantmesh up failed", "red"), f": {exc}"))
        return 1
    return code


def _run_sample(endpoints: MeshEndpoints, sample: SampleConfig, results_json: Path | None) -> int:
    """The main job on a mesh without a comparison: the sample's held-out prompts through the router, the summary.
    Returns 1 if a prompt failed with a status other than DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED, or none completed."""
    from clients.render import prompt_line, summary_view
    from tools.mesh.main_job import run_sample
    from tools.mesh.report import result_record, summarize

    console.rule("main job: held-out prompts through RouterService.Generate")
    results = asyncio.run(run_sample(
        endpoints.router_address, sample,
        on_result=lambda index, total, result: console.print(prompt_line(index, total, result)),
    ))
    summary = summarize(results)
    console.rule("summary")
    console.print(summary_view(summary))
    if results_json is not None:
        results_json.write_text(json.dumps({
            "mesh": {"router_address": endpoints.router_address,
                     "classifier_address": endpoints.classifier_address, "redis_url": endpoints.redis_url,
                     "workers": [dataclasses.asdict(w) | {"log_path": str(w.log_path or "")}
                                 for w in endpoints.workers]},
            "summary": dataclasses.asdict(summary),
            "results": [result_record(r) for r in results],
        }, indent=2))
    broken = [r for r in results if r.error_code and r.error_code not in BUDGET_STATUSES]
    return 1 if broken or summary.succeeded == 0 else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["profile"]:  # the profiler's own options (tools/profiler/cli.py)
        from tools.profiler.cli import main as profiler_main  # imported here: matplotlib is slow to import

        return profiler_main(argv[1:])
    if argv[:1] in (["models"], ["quantize"]):  # tools/models/cli.py (`quantize` is `models quantize`)
        from tools.models.cli import main as models_main

        return models_main(argv[1:] if argv[0] == "models" else argv)
    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "up": up, "chat": chat, "route": route, "profiles": profiles, "batch": batch}
    try:
        return handlers[args.command](args)
    except QuantmeshError as exc:
        err_console.print(Text.assemble((exc.code.name, "red"), f": {exc.message}"))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
