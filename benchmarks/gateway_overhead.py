"""What the HTTP gateway and the router add, and what the LiteLLM proxy adds, measured side by side in one run.

Setup (real processes on this machine): one InferenceWorker on the SyntheticEngine (deterministic tokens at a fixed
rate: the model's speed is not what is measured), a router with the classifier in its process and that worker as
its only pair, the gateway in front of the router, and the LiteLLM proxy (`litellm[proxy]`, in its own virtualenv
`.cache/litellm-venv`, created on first run) in front of the gateway, configured with one `openai/auto` model whose
`api_base` is the gateway. Every path serves the same tokens from the same worker:

- direct: `InferenceWorkerService.Generate` over gRPC;
- router: `RouterService.Generate` over gRPC (what the gateway itself adds is gateway minus router);
- gateway: `POST /v1/chat/completions` (stream, usage chunk) -> gateway -> router -> worker;
- gateway_granian: the same gateway app on granian instead of uvicorn (the measurement that chose the server);
- litellm: the same request -> LiteLLM proxy -> gateway -> router -> worker.

Added latency is paired: each call's end-to-end time (request sent -> `[DONE]` or the last gRPC message) minus that
of the call at the same position of the path below it, in interleaved rounds whose order rotates. The gateway's
figures are against direct (gateway + router); LiteLLM's against the gateway path (LiteLLM alone). HTTP paths are
read with aiohttp, gRPC ones with grpcio. Requests/s: 32 clients in a closed loop for `--rps-seconds` per path, with
4-token answers.

Figures: `added_p50_ms_1`, `added_p99_ms_1`, `added_p50_ms_32` (gateway + router over direct, 1 and 32 streams),
`litellm_added_p50_ms_1`, `litellm_added_p50_ms_32` (LiteLLM over the gateway), `rps_32`, `litellm_rps_32`
(completed streams/s at 32 concurrent). Targets (issue): added_p50_ms_1 <= 3; LiteLLM's added latency >= 10x the
gateway's at 1 and 32; rps_32 >= 500. The load generator runs on the same 2 cores as the mesh, and is counted in
every path alike.

Run: `.venv/bin/python -m benchmarks.gateway_overhead [--requests N] [--rps-seconds S]`
Writes `benchmarks/results/gateway_overhead.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc

from benchmarks.results_io import write_results
from benchmarks.router_overhead import percentile, profile_for, start
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tools.mesh.launch import start_gateway
from tools.mesh.processes import ServiceProcess, free_port, http_ok
from tools.paths import REPO_ROOT

PROMPT = "Summarise in one line: the quarterly report shows revenue up and costs flat."
SYNTHETIC_TOKENS_PER_S = 500.0
SYNTHETIC_TTFT_MS = 2.0
MAX_OUTPUT_TOKENS = 64
RPS_OUTPUT_TOKENS = 4
LITELLM_VERSION = "1.106.12"  # newer ones pin litellm-proxy(-extras) releases the registry lacks
LITELLM_VENV = REPO_ROOT / ".cache" / "litellm-venv"

Call = Callable[[], Awaitable[float]]


def litellm_binary() -> Path:
    """`litellm` of its own virtualenv (its pins clash with vLLM's), installed on first use."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return binary


def start_litellm(gateway_url: str, log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = log_dir / "litellm.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "model_list": [{"model_name": "auto", "litellm_params": {
            "model": "openai/auto", "api_base": f"{gateway_url}/v1", "api_key": "unused"}}],
        "litellm_settings": {"drop_params": True, "telemetry": False},
        # No caller authentication on either path (the benchmark's router has no callers file either).
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }))
    url = f"http://127.0.0.1:{port}"
    process = start_http_server(
        "litellm", [str(litellm_binary()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                    "--num_workers", "1"], {}, log_dir, f"{url}/health/liveliness", timeout_s=180)
    return process, url


def start_granian_gateway(router_address: str, log_dir: Path) -> tuple[subprocess.Popen, str]:
    """The same gateway app on granian's ASGI interface (`services.gateway.server.app_from_environment`), one
    worker on uvloop like the uvicorn one: the side-by-side that chose the server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_http_server(
        "gateway-granian", [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
                            "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop", "--no-ws",
                            "--log-level", "warning", "services.gateway.server:app_from_environment"],
        {"QUANTMESH_GATEWAY_ROUTER_ADDRESS": router_address, "QUANTMESH_GATEWAY_LOG_LEVEL": "WARNING"}, log_dir,
        f"{url}/readyz", timeout_s=60)
    return process, url


def start_http_server(name: str, argv: list[str], env: dict[str, str], log_dir: Path, ready_url: str,
                      timeout_s: float) -> subprocess.Popen:
    """Starts `argv` (logging to `<log_dir>/<name>.log`) and waits until GET `ready_url` answers 2xx.

    Raises:
        RuntimeError: it exited or was not ready within `timeout_s` (the log tail is included; it is killed first).
    """
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    deadline = time.monotonic() + timeout_s
    while not http_ok(ready_url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.25)
    return process


def request_body(max_tokens: int) -> dict:
    """The benchmark's chat completion: streamed, with the usage chunk."""
    return {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}}


def check_usage(usage: dict | None, max_tokens: int) -> None:
    """Raises RuntimeError unless the usage chunk came and counts `max_tokens` completion tokens."""
    if usage is None or usage["completion_tokens"] != max_tokens:
        raise RuntimeError(f"incomplete answer: usage {usage}")


def http_session() -> aiohttp.ClientSession:
    """The HTTP load generator: aiohttp, which costs the shared CPU less than httpx per streamed request
    (`benchmarks.gateway_floor` measures both against the same gateway)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                 timeout=aiohttp.ClientTimeout(total=60),
                                 headers={"authorization": "Bearer unused"})


def http_call(session: aiohttp.ClientSession, base_url: str, max_tokens: int) -> Call:
    """A streamed chat completion to `base_url`: e2e ms from the request to `data: [DONE]`.

    Raises:
        RuntimeError: a status other than 200, or an answer without its full usage chunk.
    """
    url = f"{base_url}/v1/chat/completions"
    body = request_body(max_tokens)

    async def call() -> float:
        sent = time.perf_counter()
        async with session.post(url, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {(await response.read())[:300]!r}")
            usage = None
            async for line in response.content:
                if line.startswith(b"data: [DONE]"):
                    break
                if b'"usage":{' in line:
                    usage = json.loads(line[5:])["usage"]
        check_usage(usage, max_tokens)
        return (time.perf_counter() - sent) * 1000.0
    return call


def start_synthetic_backend(log_dir: Path, processes: list[ServiceProcess]) -> tuple[ServiceProcess, ServiceProcess]:
    """The worker of every path (the SyntheticEngine at SYNTHETIC_TOKENS_PER_S, served as `bench-synthetic`) and a
    router with the classifier in its process and that worker as its only pair; each is appended to `processes`
    as it starts, so that the caller stops what did start."""
    worker = start("worker", "services.worker", {
        "QUANTMESH_WORKER_ENGINE": "synthetic", "QUANTMESH_WORKER_MODEL": "synthetic",
        "QUANTMESH_WORKER_SERVED_MODEL_NAME": "bench-synthetic", "QUANTMESH_WORKER_QUANTIZATION": "none",
        "QUANTMESH_WORKER_MAX_NUM_SEQS": "256",
        "QUANTMESH_WORKER_SYNTHETIC_TOKENS_PER_S": str(SYNTHETIC_TOKENS_PER_S),
        "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": str(SYNTHETIC_TTFT_MS)}, log_dir, 60.0)
    processes.append(worker)
    profile_path = log_dir / "profiles.json"
    profile_path.write_text(profile_for(worker.address, "bench-synthetic").to_json())
    router = start("router", "services.router", {
        "QUANTMESH_ROUTER_STATIC_PROFILES_PATH": str(profile_path),
        "QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR": str(DEFAULT_ARTIFACT_DIR)}, log_dir, 60.0)
    processes.append(router)
    return worker, router


def grpc_call(stub: worker_pb2_grpc.InferenceWorkerServiceStub | router_pb2_grpc.RouterServiceStub,
              max_tokens: int) -> Call:
    """A streamed Generate on the worker or, for a router stub, on the router (the same prompt either way)."""
    sampling = common_pb2.SamplingParams(temperature=0.0)
    request = (router_pb2.GenerateRequest(prompt=PROMPT, sampling=sampling, requirements=router_pb2.RoutingRequirements(
        max_output_tokens=max_tokens, latency_budget_ms=60_000)) if isinstance(stub, router_pb2_grpc.RouterServiceStub)
        else worker_pb2.GenerateRequest(prompt=PROMPT, max_output_tokens=max_tokens, sampling=sampling))

    async def call() -> float:
        sent = time.perf_counter()
        async for _ in stub.Generate(request, timeout=60):
            pass
        return (time.perf_counter() - sent) * 1000.0
    return call


async def paired(calls: dict[str, Call], requests: int, concurrency: int) -> dict[str, list[float]]:
    """`requests` calls per path, `concurrency` at a time, paths interleaved in rounds whose order rotates."""
    e2e: dict[str, list[float]] = {path: [] for path in calls}
    for call in calls.values():  # warm-up: connections open, code paths hot
        await asyncio.gather(*(call() for _ in range(max(4, concurrency))))
    paths = list(calls.items())
    for round_index in range(max(1, requests // concurrency)):
        shift = round_index % len(paths)
        for path, call in paths[shift:] + paths[:shift]:
            e2e[path] += await asyncio.gather(*(call() for _ in range(concurrency)))
    return e2e


async def closed_loop_rps(call: Call, clients: int, seconds: float) -> float:
    """Completed calls per second with `clients` callers, each starting its next call when one ends."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


def added(upper: list[float], lower: list[float]) -> dict[str, float]:
    differences = [u - d for u, d in zip(upper, lower, strict=True)]
    return {"p50_ms": statistics.median(differences), "p99_ms": percentile(differences, 99),
            "upper_e2e_p50_ms": statistics.median(upper), "lower_e2e_p50_ms": statistics.median(lower),
            "samples": len(differences)}


async def measure(worker_address: str, router_address: str, urls: dict[str, str], args: argparse.Namespace) -> dict:
    """Paired latencies at 1 and 32 streams and closed-loop requests/s of every path; `urls` names the HTTP
    paths (gateway, gateway_granian, litellm)."""
    async with contextlib.AsyncExitStack() as stack:
        stub = worker_pb2_grpc.InferenceWorkerServiceStub(
            await stack.enter_async_context(grpc.aio.insecure_channel(worker_address)))
        router = router_pb2_grpc.RouterServiceStub(
            await stack.enter_async_context(grpc.aio.insecure_channel(router_address)))
        session = await stack.enter_async_context(http_session())

        def calls(max_tokens: int) -> dict[str, Call]:
            return {"direct": grpc_call(stub, max_tokens), "router": grpc_call(router, max_tokens),
                    **{path: http_call(session, url, max_tokens) for path, url in urls.items()}}
        results: dict = {}
        for concurrency, requests in ((1, args.requests), (32, args.requests * 4)):
            e2e = await paired(calls(MAX_OUTPUT_TOKENS), requests, concurrency)
            results[f"concurrency_{concurrency}"] = {
                "gateway_over_direct": added(e2e["gateway"], e2e["direct"]),
                "router_over_direct": added(e2e["router"], e2e["direct"]),
                "gateway_over_router": added(e2e["gateway"], e2e["router"]),
                "gateway_granian_over_direct": added(e2e["gateway_granian"], e2e["direct"]),
                "litellm_over_gateway": added(e2e["litellm"], e2e["gateway"])}
        results["rps_32"] = {path: await closed_loop_rps(call, 32, args.rps_seconds)
                             for path, call in calls(RPS_OUTPUT_TOKENS).items()}
        return results


async def run(args: argparse.Namespace, log_dir: Path) -> tuple[dict[str, float], dict]:
    processes: list[ServiceProcess] = []
    children: list[subprocess.Popen] = []
    gateway = None
    try:
        worker, router = start_synthetic_backend(log_dir, processes)
        gateway = start_gateway(router.address, log_dir / "gateway.log",
                                env={"QUANTMESH_GATEWAY_LOG_LEVEL": "WARNING"})
        granian, granian_url = start_granian_gateway(router.address, log_dir)
        children.append(granian)
        litellm, litellm_url = start_litellm(gateway.url, log_dir)
        children.append(litellm)
        await asyncio.sleep(1.0)  # the router's load stream to the worker is up
        results = await measure(worker.address, router.address, {"gateway": gateway.url, "gateway_granian": granian_url,
                                                 "litellm": litellm_url}, args)
    finally:
        for child in children:
            child.terminate()
            child.wait(15)
        if gateway is not None:
            gateway.stop()
        for process in reversed(processes):
            process.stop(timeout_s=10.0)
    one, many, rps = results["concurrency_1"], results["concurrency_32"], results["rps_32"]
    figures = {
        "added_p50_ms_1": round(one["gateway_over_direct"]["p50_ms"], 3),
        "added_p99_ms_1": round(one["gateway_over_direct"]["p99_ms"], 3),
        "added_p50_ms_32": round(many["gateway_over_direct"]["p50_ms"], 3),
        "litellm_added_p50_ms_1": round(one["litellm_over_gateway"]["p50_ms"], 3),
        "litellm_added_p50_ms_32": round(many["litellm_over_gateway"]["p50_ms"], 3),
        "rps_32": round(rps["gateway"], 1),
        "litellm_rps_32": round(rps["litellm"], 1),
    }
    details = {
        "engine": "SyntheticEngine: deterministic tokens at a fixed rate, no model",
        "synthetic_tokens_per_s_per_request": SYNTHETIC_TOKENS_PER_S, "max_output_tokens": MAX_OUTPUT_TOKENS,
        "rps_output_tokens": RPS_OUTPUT_TOKENS, "rps_seconds": args.rps_seconds, "litellm_version": LITELLM_VERSION,
        "server": "uvicorn (uvloop, httptools), one process", "http_load_generator": "aiohttp", "direct_rps_32": round(rps["direct"], 1),
        "servers": {"uvicorn": {"added_p50_ms_1": figures["added_p50_ms_1"], "rps_32": figures["rps_32"]},
                    "granian": {"added_p50_ms_1": round(one["gateway_granian_over_direct"]["p50_ms"], 3),
                                "rps_32": round(rps["gateway_granian"], 1)}},
        "litellm_over_gateway_ratio_1": round(figures["litellm_added_p50_ms_1"] / figures["added_p50_ms_1"], 2),
        "litellm_over_gateway_ratio_32": round(figures["litellm_added_p50_ms_32"] / figures["added_p50_ms_32"], 2),
        **results,
        "targets": {"added_p50_ms_1": "<= 3", "litellm_over_gateway_ratio_1": ">= 10",
                    "litellm_over_gateway_ratio_32": ">= 10", "rps_32": ">= 500"},
    }
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="Calls per path at 1 stream (x4 at 32).")
    parser.add_argument("--rps-seconds", type=float, default=10.0, help="Closed-loop time per path, s.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-overhead-") as tmp:
        figures, details = asyncio.run(run(args, Path(tmp)))
    path = write_results("gateway_overhead", figures, details)
    print(path)
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
