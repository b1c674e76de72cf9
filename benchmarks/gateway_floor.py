"""The floor under `gateway_overhead`: what two pass-through Python hops (a grpc.aio router, an ASGI gateway) cost on
this machine, beside the real router and gateway, measured side by side in one run.

Why: `gateway_overhead`'s targets (`rps_32` >= 500, `added_p50_ms_1` <= 3) are for the gateway in front of the router.
This benchmark asks whether any Python gateway and router of this architecture can meet them here, by replacing each
real hop with the least that still speaks its protocol:

- pass-through router: a `RouterService.Generate` on grpc.aio that sends a fixed decision (that of one real router
  answer), relays the worker's token chunks as they come, and ends with a fixed summary (its token count set to the
  request's). No validation, classification, policy, retries, metrics, logs or tracing.
- pass-through gateway: one Starlette route on uvicorn (uvloop, httptools) that reads the JSON body, calls
  `RouterService.Generate` and relays every chunk as an SSE event, then a usage chunk and `data: [DONE]`. No
  validation, authentication, headers, metrics or error mapping.

Paths (one synthetic worker behind all of them; the real router has the classifier in its process):
`direct` (worker over gRPC), `router`, `passthrough_router`, `gateway` (real gateway -> real router),
`gateway_passthrough_router`, `passthrough_gateway_router`, `passthrough_gateway_passthrough_router`; and
`gateway_httpx`: the real path again with httpx as the HTTP load generator instead of aiohttp (the choice of load
generator, measured).

Figures: `rps_32_<path>` (completed streams/s, 32 clients in a closed loop, 4-token answers) and
`added_p50_ms_1_<path>` (paired against `direct`, one stream at a time, 64-token answers). The load generator shares
the 2 cores with everything it measures.

Run: `.venv/bin/python -m benchmarks.gateway_floor [--requests N] [--rps-seconds S]`
Writes `benchmarks/results/gateway_floor.json`. The two pass-through servers are this module's subcommands
(`passthrough-router`, `passthrough-gateway`), started as processes of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from benchmarks import gateway_overhead as overhead
from benchmarks.results_io import write_results
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2_grpc
from services.router import convert
from tools.mesh.launch import start_gateway
from tools.mesh.processes import ServiceProcess, free_port
from tools.paths import REPO_ROOT

ROUTER_SERVICE = "quantmesh.router.v1.RouterService"


async def serve_passthrough_router(port: int, worker_address: str, template_router: str) -> None:
    """The pass-through RouterService on 127.0.0.1:`port` (with the standard health service, which the real
    gateway's readiness reads), its decision and summary copied from one answer of the router at `template_router`."""
    async with grpc.aio.insecure_channel(template_router) as channel:
        template = [message async for message in router_pb2_grpc.RouterServiceStub(channel).Generate(
            router_pb2.GenerateRequest(prompt=overhead.PROMPT, sampling=common_pb2.SamplingParams(temperature=0.0),
                                       requirements=router_pb2.RoutingRequirements(
                                           max_output_tokens=4, latency_budget_ms=60_000)), timeout=30)]
    decision, summary = template[0], template[-1]
    worker = worker_pb2_grpc.InferenceWorkerServiceStub(grpc.aio.insecure_channel(worker_address))

    class PassthroughRouter(router_pb2_grpc.RouterServiceServicer):
        async def Generate(self, request: router_pb2.GenerateRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[router_pb2.GenerateResponse]:
            call = worker.Generate(convert.worker_request(request, request.request_id), timeout=60)
            yield decision
            async for message in call:
                if message.HasField("chunk"):
                    yield router_pb2.GenerateResponse(chunk=message.chunk)
            done = router_pb2.GenerateResponse()
            done.CopyFrom(summary)
            done.summary.usage.completion_tokens = request.requirements.max_output_tokens
            yield done

    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(PassthroughRouter(), server)
    health = health_aio.HealthServicer()
    await health.set(ROUTER_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def passthrough_gateway_app(router_address: str) -> Starlette:
    """The pass-through gateway: POST /v1/chat/completions relayed as SSE, GET /readyz."""
    stubs: list[router_pb2_grpc.RouterServiceStub] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with grpc.aio.insecure_channel(router_address) as channel:
            stubs.append(router_pb2_grpc.RouterServiceStub(channel))
            yield

    async def completions(request: Request) -> StreamingResponse:
        body = json.loads(await request.body())
        call = stubs[0].Generate(router_pb2.GenerateRequest(
            prompt=body["messages"][-1]["content"], sampling=common_pb2.SamplingParams(temperature=0.0),
            requirements=router_pb2.RoutingRequirements(max_output_tokens=body["max_tokens"],
                                                        latency_budget_ms=60_000)), timeout=60)
        await call.read()  # the decision, before the 200

        async def events() -> AsyncIterator[str]:
            head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            while (message := await call.read()) is not grpc.aio.EOF:
                if message.HasField("chunk"):
                    yield f'data: {head}"delta":{{"content":{json.dumps(message.chunk.text)}}}}}]}}\n\n'
                elif message.HasField("summary"):
                    usage = {"completion_tokens": message.summary.usage.completion_tokens}
                    yield f'data: {{"choices":[],"usage":{json.dumps(usage)}}}\n\ndata: [DONE]\n\n'
        return StreamingResponse(events(), media_type="text/event-stream")

    async def ready(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                             Route("/readyz", ready)], lifespan=lifespan)


def start_passthrough_router(worker_address: str, router_address: str, log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.gateway_floor", "passthrough-router", "--port", str(port), "--worker",
         worker_address, "--template-router", router_address],
        stdout=open(log_dir / "passthrough-router.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        cwd=REPO_ROOT)
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
    return process, address


def start_passthrough_gateway(router_address: str, log_dir: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = overhead.start_http_server(
        name, [sys.executable, "-m", "benchmarks.gateway_floor", "passthrough-gateway", "--port", str(port),
               "--router", router_address], {}, log_dir, f"{url}/readyz", timeout_s=60)
    return process, url


async def measure(worker_address: str, router_addresses: dict[str, str], urls: dict[str, str],
                  args: argparse.Namespace) -> dict:
    async with contextlib.AsyncExitStack() as stack:
        stubs = {"direct": worker_pb2_grpc.InferenceWorkerServiceStub(
            await stack.enter_async_context(grpc.aio.insecure_channel(worker_address)))}
        for path, address in router_addresses.items():
            stubs[path] = router_pb2_grpc.RouterServiceStub(
                await stack.enter_async_context(grpc.aio.insecure_channel(address)))
        session = await stack.enter_async_context(overhead.http_session())
        httpx_client = await stack.enter_async_context(httpx.AsyncClient(
            base_url=urls["gateway"], timeout=60, headers={"authorization": "Bearer unused"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)))

        def calls(max_tokens: int) -> dict[str, overhead.Call]:
            return {**{path: overhead.grpc_call(stub, max_tokens) for path, stub in stubs.items()},
                    **{path: overhead.http_call(session, url, max_tokens) for path, url in urls.items()},
                    "gateway_httpx": httpx_call(httpx_client, max_tokens)}
        e2e = await overhead.paired(calls(overhead.MAX_OUTPUT_TOKENS), args.requests, 1)
        latency = {path: overhead.added(e2e[path], e2e["direct"]) for path in e2e if path != "direct"}
        rps = {path: await overhead.closed_loop_rps(call, 32, args.rps_seconds)
               for path, call in calls(overhead.RPS_OUTPUT_TOKENS).items()}
        return {"added_over_direct_1": latency, "rps_32": rps}


def httpx_call(client: httpx.AsyncClient, max_tokens: int) -> overhead.Call:
    """The gateway call of `overhead.http_call` made with httpx (the load generator's own cost, compared)."""
    body = overhead.request_body(max_tokens)

    async def call() -> float:
        sent = time.perf_counter()
        usage = None
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: [DONE]"):
                    break
                if '"usage":{' in line:
                    usage = json.loads(line[5:])["usage"]
        overhead.check_usage(usage, max_tokens)
        return (time.perf_counter() - sent) * 1000.0
    return call


async def run(args: argparse.Namespace, log_dir: Path) -> tuple[dict[str, float], dict]:
    processes: list[ServiceProcess] = []
    children: list[subprocess.Popen] = []
    gateways = []
    try:
        worker, router = overhead.start_synthetic_backend(log_dir, processes)
        passthrough, passthrough_address = start_passthrough_router(worker.address, router.address, log_dir)
        children.append(passthrough)
        urls = {}
        for path, upstream in (("gateway", router.address), ("gateway_passthrough_router", passthrough_address)):
            gateways.append(start_gateway(upstream, log_dir / f"{path}.log",
                                          env={"QUANTMESH_GATEWAY_LOG_LEVEL": "WARNING"}))
            urls[path] = gateways[-1].url
        for path, upstream in (("passthrough_gateway_router", router.address),
                               ("passthrough_gateway_passthrough_router", passthrough_address)):
            child, urls[path] = start_passthrough_gateway(upstream, log_dir, path)
            children.append(child)
        await asyncio.sleep(1.0)  # the router's load stream to the worker is up
        results = await measure(worker.address, {"router": router.address, "passthrough_router": passthrough_address},
                                urls, args)
    finally:
        for child in children:
            child.terminate()
            child.wait(15)
        for gateway in gateways:
            gateway.stop()
        for process in reversed(processes):
            process.stop(timeout_s=10.0)
    figures = {f"rps_32_{path}": round(value, 1) for path, value in results["rps_32"].items()}
    figures |= {f"added_p50_ms_1_{path}": round(value["p50_ms"], 3)
                for path, value in results["added_over_direct_1"].items()}
    details = {"engine": "SyntheticEngine: deterministic tokens at a fixed rate, no model",
               "synthetic_tokens_per_s_per_request": overhead.SYNTHETIC_TOKENS_PER_S,
               "max_output_tokens": overhead.MAX_OUTPUT_TOKENS, "rps_output_tokens": overhead.RPS_OUTPUT_TOKENS,
               "rps_seconds": args.rps_seconds, "http_load_generator": "aiohttp (gateway_httpx: httpx)", **results,
               "targets_of_gateway_overhead": {"rps_32": ">= 500", "added_p50_ms_1": "<= 3"}}
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    router = commands.add_parser("passthrough-router")
    router.add_argument("--port", type=int, required=True)
    router.add_argument("--worker", required=True)
    router.add_argument("--template-router", required=True)
    gateway = commands.add_parser("passthrough-gateway")
    gateway.add_argument("--port", type=int, required=True)
    gateway.add_argument("--router", required=True)
    parser.add_argument("--requests", type=int, default=100, help="Calls per path at 1 stream.")
    parser.add_argument("--rps-seconds", type=float, default=10.0, help="Closed-loop time per path, s.")
    args = parser.parse_args()
    if args.command == "passthrough-router":
        asyncio.run(serve_passthrough_router(args.port, args.worker, args.template_router))
        return
    if args.command == "passthrough-gateway":
        import uvicorn

        uvicorn.run(passthrough_gateway_app(args.router), host="127.0.0.1", port=args.port, log_level="warning",
                    loop="uvloop", http="httptools")
        return
    with tempfile.TemporaryDirectory(prefix="gateway-floor-") as tmp:
        figures, details = asyncio.run(run(args, Path(tmp)))
    print(write_results("gateway_floor", figures, details))
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
