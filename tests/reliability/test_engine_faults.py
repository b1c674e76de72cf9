"""Faults around real engine requests: one real vLLM worker (tiny-llama-s) behind a TCP proxy the test controls.

Orphaned engine requests are counted from the worker's own scheduler counters (GetLoad: running + waiting, asked
directly, not through the proxy) once every client call has ended. Scenarios: the caller cancels mid-stream; the
router-worker link is dropped mid-stream; the link stalls past the deadline; the router is killed -9 mid-stream
(and the same client is served by the restarted router).
Writes engine_<scenario>.json into the session's results directory (`tests.fixtures.results`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from clients.messages import Requirements, Sampling
from clients.sdk import AsyncQuantmeshClient
from core.vocabulary import RouteOutcome
from tests.fixtures.reliability import LocalMesh
from tests.reliability.accounting import RequestOutcome, ScenarioResult, run_generate
from tests.reliability.meshes import vllm_worker
from tests.reliability.traffic import reconnected, until
from tools.paths import MODEL_CACHE_DIR
from tools.tiny_model.build import build_tiny_model

pytestmark = pytest.mark.vllm

WORKER = "tiny-s"
# Greedy decoding of this prompt runs to max_output_tokens on the tiny model (no end-of-sequence; sampling can pick
# one early): the streams are still generating when the fault lands.
PROMPT = "The capital of Peru is"
SAMPLING = Sampling(temperature=0.0)
LONG = Requirements(max_output_tokens=1500, latency_budget_ms=20_000)
STREAMS = 3
# Statuses of a stream refused before its first token, in the stalled-link scenario.
REFUSED_AT_ONCE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")
# Of worker -> router bytes after which a link fault lands: ~10% into the three streams (each carries ~30 KB over
# 1500 tokens), far above what the router's own load stream and reconnection exchange meanwhile (2 KB was not).
LINK_FAULT_AFTER_BYTES = 16 * 1024


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    # Only the small model (tests.fixtures.worker's tiny_model_dirs would also build the medium one), or a model
    # directory given in QUANTMESH_RELIABILITY_MODEL_DIR (skips the build).
    given = os.environ.get("QUANTMESH_RELIABILITY_MODEL_DIR")
    model_dir = Path(given) if given else await asyncio.to_thread(build_tiny_model, MODEL_CACHE_DIR / "tiny-llama-s",
                                                                  size="s")
    async with LocalMesh(tmp_path_factory.mktemp("engine-mesh"), [vllm_worker(WORKER, model_dir)],
                         proxied=frozenset({WORKER}), router_env={"QUANTMESH_ROUTER_CLASSIFIER_TIMEOUT_MS": "500"},
                         ) as running:
        yield running


@pytest.fixture
async def client(mesh: LocalMesh):
    async with AsyncQuantmeshClient(mesh.router_address) as sdk:
        # The previous scenario may have cut the router's load stream: wait until the router counts the worker
        # healthy again (a fallback decision would also serve a request, so a served one is not enough).
        async def routable() -> bool:
            probe = Requirements(max_output_tokens=2, latency_budget_ms=5000)
            return (await sdk.route(PROMPT, probe)).outcome is RouteOutcome.ROUTED and (
                await run_generate(sdk, PROMPT, probe)).ok

        assert await until(routable, 20.0)
        yield sdk


async def streams_with_fault(mesh: LocalMesh, client: AsyncQuantmeshClient, fault: Callable[[], Awaitable[None]],
                             requirements: Requirements = LONG, timings: dict | None = None) -> list[RequestOutcome]:
    """Starts `STREAMS` long generations, runs `fault` as soon as the engine itself reports one running (its own
    counters: the clients' view lags behind on a busy machine) or a client sees a token, and returns their outcomes.
    Link faults do not go through here: the proxy lands them itself (`link_fault`)."""
    timings = {} if timings is None else timings
    first_token = asyncio.Event()

    async def one() -> RequestOutcome:
        outcome = RequestOutcome(status="OK", admitted=False)
        stream = client.generate(PROMPT, requirements, sampling=SAMPLING)
        began = time.monotonic()
        try:
            async for event in stream:
                if hasattr(event, "first_token_index"):
                    outcome.chunks.append(event)
                    first_token.set()
                elif hasattr(event, "usage"):
                    outcome.summary = event
                else:
                    outcome.admitted, outcome.decision = True, event
        except Exception as exc:  # noqa: BLE001 - the SDK's typed errors; anything else is recorded as undefined
            outcome.status = getattr(getattr(exc, "code", None), "name", type(exc).__name__)
            outcome.message = str(exc)
        outcome.latency_s = time.monotonic() - began
        return outcome

    began = time.monotonic()
    tasks = [asyncio.create_task(one()) for _ in range(STREAMS)]

    async def engine_running() -> None:
        async def running() -> bool:
            with contextlib.suppress(grpc.aio.AioRpcError):  # a starved worker may answer late: the tokens decide
                return (await mesh.worker_load(WORKER)).running_requests > 0
            return False

        await until(running, 30.0, interval_s=0.01)

    # Whichever comes first: the engine reports a running request, or a client sees a token.
    signals = [asyncio.create_task(engine_running()), asyncio.create_task(first_token.wait())]
    done, pending = await asyncio.wait(signals, timeout=30.0, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    started = bool(done)
    fault_at = time.monotonic() - began
    await fault()
    outcomes = list(await asyncio.gather(*tasks))
    timings.update(fault_at_s=round(fault_at, 3), engine_running_at_fault=started,
                   tokens_at_end=[o.tokens for o in outcomes],
                   stream_latency_s=[round(o.latency_s, 3) for o in outcomes])
    return outcomes


async def link_fault(client: AsyncQuantmeshClient, arm: Callable[[int], None],
                     requirements: Requirements = LONG) -> list[RequestOutcome]:
    """Arms a proxy fault to land once `LINK_FAULT_AFTER_BYTES` of the streams have come back from the worker, then
    runs `STREAMS` long generations: the fault is mid-stream whatever the machine's load (the proxy counts the bytes
    it relays, no polling), since each stream carries far more than that."""
    arm(LINK_FAULT_AFTER_BYTES)
    return list(await asyncio.gather(*(run_generate(client, PROMPT, requirements, sampling=SAMPLING)
                                       for _ in range(STREAMS))))


def assert_cut(outcomes: list[RequestOutcome], status: str) -> None:
    """The fault cut at least one stream, with `status`; a stream whose last token was already out may complete."""
    statuses = [outcome.status for outcome in outcomes]
    assert status in statuses and set(statuses) <= {status, "OK"}, statuses


async def finish(mesh: LocalMesh, result: ScenarioResult, outcomes: list[RequestOutcome]) -> None:
    result.record_all(outcomes)
    result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    result.figures["dead_processes"] = mesh.dead_processes()
    result.write()
    result.assert_clean()
    assert not mesh.dead_processes()


async def test_caller_cancels_mid_stream(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("engine_cancel")
    outcomes = await asyncio.gather(*(run_generate(client, PROMPT, LONG, sampling=SAMPLING, cancel_after_tokens=8)
                                      for _ in range(STREAMS)))
    await finish(mesh, result, list(outcomes))
    assert result.rejected["CANCELLED"] == STREAMS


async def test_link_dropped_mid_stream(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("engine_link_drop")
    outcomes = await link_fault(client, mesh.proxies[WORKER].drop_after)
    result.figures.update(tokens_at_end=[o.tokens for o in outcomes],
                          messages=[o.message for o in outcomes])
    await finish(mesh, result, outcomes)
    assert_cut(outcomes, "UNAVAILABLE")


async def test_link_stalled_past_the_deadline(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("engine_link_stall")
    proxy = mesh.proxies[WORKER]
    # Within what the worker admits at its measured speed, so that the stall (not admission) ends the calls.
    budget = Requirements(max_output_tokens=1500, latency_budget_ms=8000)

    try:
        outcomes = await link_fault(client, proxy.stall_after, budget)
        result.figures["tokens_at_end"] = [o.tokens for o in outcomes]
        # The worker hears nothing while the link is stalled: its own gRPC deadline (what was left of the budget,
        # passed by the router) ends the call and aborts the engine request.
        result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    finally:
        proxy.resume()
    result.record_all(outcomes)
    result.figures["dead_processes"] = mesh.dead_processes()
    result.write()
    result.assert_clean()
    # A stream can be refused at once, with no token relayed, rather than sent into the black hole: UNAVAILABLE when
    # it reaches the router after the stall has made the worker's load reports stale (two fresh-clone runs), or
    # RESOURCE_EXHAUSTED when the worker's admission predicts it would miss its deadline behind the other streams
    # (one fresh-clone run). The others are cut by the deadline.
    refused = [o for o in outcomes if o.status in REFUSED_AT_ONCE]
    assert all(o.tokens == 0 for o in refused), [(o.status, o.tokens, o.message) for o in refused]
    assert_cut([o for o in outcomes if o.status not in REFUSED_AT_ONCE], "DEADLINE_EXCEEDED")


async def test_router_killed_mid_stream(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("engine_router_kill")
    outcomes = await streams_with_fault(mesh, client, mesh.kill_router, timings=result.figures)
    result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    await mesh.start_router()
    afters, reconnect_s = await reconnected(client, Requirements(max_output_tokens=8, latency_budget_ms=10_000))
    after = afters[-1]
    result.figures.update(same_client_served_after_restart=after.ok, same_client_reconnect_s=round(reconnect_s, 2))
    await finish(mesh, result, [*outcomes, *afters])
    assert_cut(outcomes, "UNAVAILABLE")
    assert after.ok
