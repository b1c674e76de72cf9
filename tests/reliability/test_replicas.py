"""Replicas of one pair (its endpoint lists two synthetic workers): the router sends new requests to the less
loaded replica, reports which one in the decision and the summary, and when a replica is killed its traffic moves to
the other without failing a request that had not streamed a token yet."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
import pytest

from clients.messages import Requirements, Sampling
from clients.sdk import AsyncQuantmeshClient
from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.reliability import LocalMesh
from tests.fixtures.waiting import await_until
from tests.reliability.accounting import run_generate
from tests.reliability.meshes import synthetic_worker

SHORT = Requirements(max_output_tokens=4, latency_budget_ms=10_000)
LONG_TOKENS = 400  # 8 s at the synthetic worker's 50 tokens/s
GREEDY = Sampling(temperature=0.0)


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    first = synthetic_worker("syn-a1", "syn-a", accuracy=(0.9, 0.9, 0.9), price_per_hour_usd=0.5)
    second = dataclasses.replace(first, name="syn-a2", pair_of="syn-a1")
    async with LocalMesh(tmp_path_factory.mktemp("replica-mesh"), [first, second],
                         router_env={"QUANTMESH_ROUTER_CLASSIFIER_TIMEOUT_MS": "500"}) as running:
        yield running


@pytest.fixture
async def client(mesh: LocalMesh):
    async with AsyncQuantmeshClient(mesh.router_address) as connected:
        yield connected


async def _load(address: str, streams: int) -> list[grpc.aio.Call]:
    """`streams` long generations sent straight to one worker (not through the router), left running."""
    channel = grpc.aio.insecure_channel(address)
    stub = worker_pb2_grpc.InferenceWorkerServiceStub(channel)
    calls = [stub.Generate(worker_pb2.GenerateRequest(request_id=f"load-{i}", prompt="Tell a long story.",
                                                      max_output_tokens=LONG_TOKENS,
                                                      sampling=common_pb2.SamplingParams(temperature=0.0)),
                           timeout=60) for i in range(streams)]
    for call in calls:
        await call.initial_metadata()
    return calls


async def test_new_requests_go_to_the_less_loaded_replica(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    loaded, idle = mesh.worker_addresses["syn-a1"], mesh.worker_addresses["syn-a2"]
    calls = await _load(loaded, 6)
    try:
        # The router sees the load in the replica's next WatchLoad report (every 200 ms).
        async def running() -> bool:
            return (await mesh.worker_load("syn-a1")).running_requests == 6
        await await_until(running, 10, 0.05)
        await asyncio.sleep(0.5)
        outcomes = [await run_generate(client, "What is 2 + 2?", SHORT, sampling=GREEDY) for _ in range(8)]
        assert [o.status for o in outcomes] == ["OK"] * 8
        assert {o.decision.chosen_endpoint for o in outcomes} == {idle}
        assert {o.summary.served_by_endpoint for o in outcomes} == {idle}
        route = await client.route("What is 2 + 2?", SHORT)
        assert route.chosen_endpoint == idle
    finally:
        for call in calls:
            call.cancel()


async def test_concurrent_requests_spread_over_both_replicas(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    # Each router request counts on its replica at once (before any load report), so 8 at a time are split about
    # evenly (a request that finishes early frees its slot: not exactly 4 / 4).
    async def idle() -> bool:
        loads = [await mesh.worker_load(name) for name in ("syn-a1", "syn-a2")]
        return all(load.running_requests == 0 for load in loads)
    await await_until(idle, 10, 0.05)
    await asyncio.sleep(0.5)  # and the router has their idle reports
    requirements = Requirements(max_output_tokens=40, latency_budget_ms=10_000)
    outcomes = await asyncio.gather(*(run_generate(client, "Name a river.", requirements, sampling=GREEDY)
                                      for _ in range(8)))
    assert [o.status for o in outcomes] == ["OK"] * 8
    served = [o.summary.served_by_endpoint for o in outcomes]
    counts = sorted(served.count(address) for address in set(served))
    assert len(counts) == 2 and counts[0] >= 2, served


async def test_a_killed_replica_fails_no_request_that_had_not_streamed(mesh: LocalMesh,
                                                                       client: AsyncQuantmeshClient) -> None:
    requirements = Requirements(max_output_tokens=50, latency_budget_ms=10_000)  # ~1 s each
    outcomes = []
    stop_at = time.monotonic() + 6.0

    async def caller() -> None:
        while time.monotonic() < stop_at:
            outcomes.append((time.monotonic(), await run_generate(client, "Name a river.", requirements,
                                                                  sampling=GREEDY)))

    callers = [asyncio.create_task(caller()) for _ in range(6)]
    await asyncio.sleep(2.0)
    killed_at = time.monotonic()
    await mesh.kill_worker("syn-a1")
    await asyncio.gather(*callers)
    survivor, killed = mesh.worker_addresses["syn-a2"], mesh.worker_addresses["syn-a1"]
    assert any(o.status == "OK" and o.summary.served_by_endpoint == killed for _, o in outcomes)  # it carried traffic
    failed = [o for _, o in outcomes if o.status != "OK"]
    # A request cut on the killed replica after its first token ends UNAVAILABLE (never retried: no duplicate
    # tokens); every other request, those that had not streamed a token included, is served.
    assert all(o.status == "UNAVAILABLE" and o.tokens > 0 for o in failed), [(o.status, o.tokens) for o in failed]
    after = [o for started, o in outcomes if started > killed_at + 0.5]
    assert after and all(o.status == "OK" and o.summary.served_by_endpoint == survivor for o in after)
    retried = [o for _, o in outcomes if o.status == "OK" and o.summary.attempts > 1]
    assert all(o.summary.served_by_endpoint == survivor for o in retried)
    await mesh.start_worker("syn-a1")
