"""Faults against the real local mesh (synthetic workers; real redis-server, classifier and router processes).

Each scenario runs closed-loop callers through the SDK, breaks one part mid-run (kill -9 of a worker mid-stream, of
the classifier, of Redis, of the router; a delayed, stalled then dropped link between router and worker through a
TCP proxy), repairs it, and checks from what the callers received and what the workers report:
- every request ended in success or a defined status (never INTERNAL/UNKNOWN, never hung past its deadline);
- no token duplicated or lost in any stream (TokenChunk.first_token_index, summary completion tokens);
- no engine request left running on the workers (their own GetLoad counters);
- the mesh serves again once the part is back (the router picks the worker / classifier / Redis up again; callers
  reconnect to a restarted router on the same port with the same client).
Writes <scenario>.json for each into the session's results directory (`tests.fixtures.results`);
QUANTMESH_RELIABILITY_LONG=1 runs 3x the traffic. The scenarios share one mesh and run in file order; each leaves it
whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import grpc
import pytest

from clients.messages import Requirements
from clients.sdk import AsyncQuantmeshClient
from core.vocabulary import RejectionReason
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.reliability import LocalMesh, environment_flag
from tests.fixtures.waiting import await_until
from tests.reliability.accounting import RequestOutcome, ScenarioResult, check_tokens, run_generate
from tests.reliability.meshes import synthetic_pair
from tests.reliability.traffic import PROMPT, reconnected, traffic_during, until
from tests.router.helpers import document_dict

REQUIREMENTS = Requirements(max_output_tokens=24, latency_budget_ms=3000)  # ~0.5 s of tokens per request
CLIENTS = 6
PROXIED = "syn-small"
MEASURED_TOKENS = 20  # per flood stream, before the admission scenario (20 ms per token: ~0.4 s)
SCALE = 3.0 if environment_flag("QUANTMESH_RELIABILITY_LONG") else 1.0  # the long variant: 3x the traffic time


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    async with LocalMesh(tmp_path_factory.mktemp("fault-mesh"), synthetic_pair(),
                         proxied=frozenset({PROXIED})) as running:
        yield running


@pytest.fixture
async def client(mesh: LocalMesh):
    async with AsyncQuantmeshClient(mesh.router_address) as sdk:
        yield sdk


async def routable_again(client: AsyncQuantmeshClient, model_id: str, timeout_s: float = 15.0) -> bool:
    """True once the router counts `model_id` healthy again (its candidate is no longer rejected as unhealthy or
    circuit-open), whether or not this prompt would pick it."""
    async def healthy() -> bool:
        decision = await client.route(PROMPT, REQUIREMENTS)
        candidate = next(c for c in decision.candidates if c.pair.model_id == model_id)
        return not {r.reason for r in candidate.rejections} & {RejectionReason.UNHEALTHY, RejectionReason.CIRCUIT_OPEN}

    return await until(healthy, timeout_s, interval_s=0.05)


async def served_by(client: AsyncQuantmeshClient, model_id: str, timeout_s: float = 15.0) -> bool:
    """True once a request is served by `model_id` (the router routes to it again), False after `timeout_s`."""
    async def served() -> bool:
        outcome = await run_generate(client, PROMPT, REQUIREMENTS)
        return outcome.ok and outcome.summary.served_by is not None and outcome.summary.served_by.model_id == model_id

    return await until(served, timeout_s)


async def finish(mesh: LocalMesh, result: ScenarioResult, outcomes: list[RequestOutcome]) -> None:
    result.record_all(outcomes)
    result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    result.figures["dead_processes"] = mesh.dead_processes()
    result.write()
    result.assert_clean()
    assert not mesh.dead_processes()
    assert result.succeeded > 0


async def test_worker_killed_mid_stream(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("fault_worker_kill")
    killed: list[str] = []

    async def kill_the_busiest_worker() -> None:  # the one serving the most streams right now
        running = {name: (await mesh.worker_load(name)).running_requests for name in mesh.workers}
        killed.append(max(running, key=running.__getitem__))
        await mesh.kill_worker(killed[0])

    outcomes = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=4.0 * SCALE, fault_at_s=1.5,
                                    fault=kill_the_busiest_worker)
    survivor = next(name for name in mesh.workers if name != killed[0])
    mid_stream = [o for o in outcomes if o.status == "UNAVAILABLE" and o.chunks]
    after_kill = [o for o in outcomes[-CLIENTS * 2:] if o.ok]
    await mesh.start_worker(killed[0])
    recovered = await routable_again(client, killed[0])
    result.figures.update(killed=killed[0], streams_cut_mid_stream=len(mid_stream),
                          recovered_after_restart=recovered,
                          served_by_survivor_after_kill=sum(o.summary.served_by.model_id == survivor
                                                            for o in after_kill))
    await finish(mesh, result, outcomes)
    assert mid_stream, "the worker was killed with no stream in flight: the scenario did not happen"
    assert all("not retried" in o.message for o in mid_stream)  # after a token: never re-sent elsewhere
    assert result.figures["served_by_survivor_after_kill"] > 0
    assert recovered


async def test_worker_back_after_a_long_outage_is_routed_to_within_seconds(mesh: LocalMesh,
                                                                         client: AsyncQuantmeshClient) -> None:
    """gRPC's own reconnect backoff grows to 120 s while an endpoint is down; the router caps it
    (`upstream_reconnect_backoff_max_ms`, 1 s by default), so a worker back from an outage takes traffic again
    about a second after it is SERVING, however long it was gone."""
    result = ScenarioResult("fault_worker_long_outage")
    outage_s = 25.0  # uncapped, the channel would by now wait ~10-17 s between attempts
    await mesh.kill_worker(PROXIED)
    outcomes = [await run_generate(client, PROMPT, REQUIREMENTS)]  # served by the other pair meanwhile
    await asyncio.sleep(outage_s)  # deliberate: the outage's length is the scenario
    await mesh.start_worker(PROXIED)
    serving_at = time.monotonic()
    recovered = await routable_again(client, PROXIED, timeout_s=30.0)
    routed_after_s = time.monotonic() - serving_at
    recovered = recovered and await served_by(client, PROXIED)
    result.figures.update(outage_s=outage_s, routed_to_after_serving_s=round(routed_after_s, 2))
    await finish(mesh, result, outcomes)
    assert recovered
    assert routed_after_s < 3.0, routed_after_s


async def test_classifier_killed(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("fault_classifier_kill")
    outcomes = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=3.0 * SCALE, fault_at_s=1.0,
                                    fault=mesh.kill_classifier)
    degraded = sum(o.ok and o.decision.classifier_degraded for o in outcomes)
    await mesh.start_classifier()

    async def classifier_used_again() -> bool:
        outcome = await run_generate(client, PROMPT, REQUIREMENTS)
        return outcome.ok and not outcome.decision.classifier_degraded

    recovered = await until(classifier_used_again, 15.0)
    result.figures.update(served_with_degraded_classification=degraded, recovered_after_restart=recovered)
    await finish(mesh, result, outcomes)
    assert result.succeeded == result.sent, result.rejected  # classification degrades, requests do not fail
    assert degraded > 0
    assert recovered


async def test_redis_killed(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("fault_redis_kill")

    async def kill_redis() -> None:
        await asyncio.to_thread(mesh.redis.kill)

    outcomes = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=3.0 * SCALE, fault_at_s=1.0,
                                    fault=kill_redis)
    await asyncio.to_thread(mesh.redis.start)
    document = json.loads(mesh.profiles_path.read_text())
    republished = json.dumps(document_dict(*document["pairs"]))

    async def publish_reaches_the_router() -> bool:
        try:
            version = await client.profiles.publish(republished)
            return (await client.profiles.get()).version == version
        except Exception:  # noqa: BLE001 - Redis still coming back: try again
            return False

    recovered = await until(publish_reaches_the_router, 15.0, interval_s=0.5)
    result.figures.update(recovered_after_restart=recovered)
    await finish(mesh, result, outcomes)
    assert result.succeeded == result.sent, result.rejected  # the last good profiles keep serving
    assert recovered


async def test_router_killed_and_restarted(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("fault_router_kill")

    async def kill_and_restart() -> None:
        await mesh.kill_router()
        await asyncio.sleep(0.5)  # deliberate: the router stays down this long (kill_router waited for the exit)
        await mesh.start_router()

    outcomes = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=6.0 * SCALE, fault_at_s=1.0,
                                    fault=kill_and_restart)
    # The same client (same channel) is served by the restarted router.
    afters, reconnect_s = await reconnected(client, REQUIREMENTS)
    after = afters[-1]
    result.figures.update(unavailable=sum(o.status == "UNAVAILABLE" for o in outcomes),
                          same_client_served_after_restart=after.ok,
                          same_client_reconnect_s=round(reconnect_s, 2))
    outcomes.extend(afters)
    await finish(mesh, result, outcomes)
    assert result.rejected["UNAVAILABLE"] > 0, "the router was killed with nothing in flight"
    assert after.ok


async def test_worker_link_delayed_stalled_and_dropped(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    result = ScenarioResult("fault_worker_link")
    proxy = mesh.proxies[PROXIED]

    async def delay() -> None:
        proxy.delay_s = 0.03

    delayed = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=2.5 * SCALE, fault_at_s=0.5, fault=delay)
    proxy.delay_s = 0.0

    async def stall_then_drop() -> None:
        proxy.stall()
        # Deliberate: the link stays stalled past the router's load-staleness limit (1.5 s), which routes around it.
        await asyncio.sleep(2.0)
        await proxy.drop()
        proxy.resume()

    stalled = await traffic_during(client, REQUIREMENTS, clients=CLIENTS, duration_s=4.0 * SCALE, fault_at_s=0.75,
                                   fault=stall_then_drop)
    cut = [o for o in stalled if not o.ok]
    retried = [o for o in stalled if o.ok and o.summary.attempts > 1]
    recovered = await served_by(client, PROXIED)
    result.figures.update(
        delayed_succeeded=sum(o.ok for o in delayed), delayed_sent=len(delayed),
        delayed_served_by_proxied=sum(o.ok and o.summary.served_by.model_id == PROXIED for o in delayed),
        link_cut_mid_stream=len(cut), link_cut_retried_before_first_token=len(retried),
        recovered_after_drop=recovered,
    )
    await finish(mesh, result, delayed + stalled)
    assert all(o.ok for o in delayed), {o.status for o in delayed}  # 30 ms per relayed chunk fits the budget
    assert result.figures["delayed_served_by_proxied"] > 0, "no request crossed the delayed link"
    assert cut or retried, "the link fault hit no request"
    assert all(o.status in {"UNAVAILABLE", "DEADLINE_EXCEEDED"} and o.chunks for o in cut), [
        (o.status, o.message) for o in cut]
    assert recovered


async def test_worker_refuses_what_its_deadline_cannot_cover(mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    """Worker admission control: with streams in flight, a request whose deadline cannot cover its tokens at the
    measured speed is refused at once (RESOURCE_EXHAUSTED, retry-after-ms), directly and through the router (which
    passes the refusal and its hint on); a request the deadline covers is still served. Synthetic engine: its ITL is
    fixed (20 ms per token per stream), so the prediction does not depend on how busy this machine is."""
    result = ScenarioResult("fault_worker_admission")
    channels = [grpc.aio.insecure_channel(address) for address in mesh.worker_addresses.values()]
    stubs = [worker_pb2_grpc.InferenceWorkerServiceStub(channel) for channel in channels]
    stub = stubs[0]

    def request(request_id: str, max_output_tokens: int) -> worker_pb2.GenerateRequest:
        return worker_pb2.GenerateRequest(request_id=request_id, prompt=PROMPT, max_output_tokens=max_output_tokens)

    flood = [each.Generate(request(f"flood-{i}", 400), timeout=30) for each in stubs for i in range(2)]
    received = [0] * len(flood)  # tokens each flood stream has received

    async def drain(index: int, call) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for response in call:
                received[index] += len(response.chunk.token_ids)

    drains = [asyncio.create_task(drain(index, call)) for index, call in enumerate(flood)]
    try:
        # Every stream has had its first token and many more: the worker has measured TTFT and ITL.
        await await_until(lambda: min(received) >= MEASURED_TOKENS, 10.0,
                          message=lambda: f"the flood streams are slow to start: {received} tokens")
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # 400 tokens x 20 ms = 8 s > 1 s
            async for _ in stub.Generate(request("too-long", 400), timeout=1.0):
                pass
        refusal_ms = (time.monotonic() - started) * 1000
        fits = [r async for r in stub.Generate(request("fits", 4), timeout=5.0)]
        # 400 tokens in 2 s: the router's profile says no idle pair could (a flagged fallback, not overload); the
        # workers refuse it from their own measurements and the router passes the refusal and its hint on.
        routed = await run_generate(client, PROMPT, Requirements(max_output_tokens=400, latency_budget_ms=2000))
    finally:
        for call in flood:
            call.cancel()
        await asyncio.gather(*drains)
        for channel in channels:
            await channel.close()
    trailing = dict(refused.value.trailing_metadata() or ())
    result.sent = 3 + len(flood)
    result.rejected[refused.value.code().name] += 1
    result.rejected["CANCELLED"] += len(flood)  # ended by the test
    result.record(routed)
    completion = fits[-1].complete.usage.completion_tokens if fits and fits[-1].HasField("complete") else None
    result.succeeded += int(completion is not None)
    duplicated, lost = check_tokens([r.chunk for r in fits if r.HasField("chunk")], completion)
    result.duplicated_tokens += duplicated
    result.lost_tokens += lost
    result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    result.figures.update(refusal_ms=round(refusal_ms, 1), retry_after_ms=trailing.get("retry-after-ms"),
                          refusal_message=refused.value.details(), routed_status=routed.status,
                          routed_retry_after_s=routed.retry_after_s, routed_message=routed.message)
    result.write()
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
    assert int(trailing["retry-after-ms"]) > 0
    assert refusal_ms < 1000  # refused, not queued until the deadline
    assert completion == 4  # a request the deadline covers is still served
    assert routed.status == "RESOURCE_EXHAUSTED" and routed.retry_after_s, (routed.status, routed.message)
    result.assert_clean()
