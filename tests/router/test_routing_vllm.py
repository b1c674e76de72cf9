"""End to end: router + real classifier + real Redis + two real vLLM workers (the tiny models as two pairs).

Engines are expensive (~40 s each to start on this machine), so this module starts exactly two, shares them across
its tests, and orders the tests so that the destructive ones (which kill workers) run last:
  tiny-cheap/awq      cheap and fast, accurate only on simple queries;
  tiny-accurate/none  dearer, accurate on every tier.
Both serve the same tiny local model (`tiny-llama-s`): the pairs differ by their profiles, which is what routing reads.
With required_accuracy 0.8, a SIMPLE query may go to either (the cheap one wins on cost and latency); COMPLEX and HARD
queries only to the accurate one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest

from core.profiles import ProfileDocument
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.router.profile_store import ProfileStore, connect
from tests.fixtures.router import start_router
from tests.fixtures.worker import engine_executors, paced_engine, suspended, worker_load
from tests.router.helpers import document, pair_dict
from tools.mesh.launch import WorkerProcess, start_worker
from tools.paths import MODEL_CACHE_DIR
from tools.tiny_model.build import build_tiny_model

pytestmark = pytest.mark.vllm

SIMPLE_PROMPT = "hi"
HARD_PROMPT = (
    "Prove that for every integer n > 1 the sum of the reciprocals 1/1 + 1/2 + ... + 1/n is never an integer, "
    "then derive a bound on the 2-adic valuation of the partial sums and explain each step of the argument."
)
REQUIRED_ACCURACY = 0.8
BUDGET_MS = 30_000
# Greedy decoding of this prompt runs to max_output_tokens on the tiny models (no end-of-sequence): tests that need
# a long generation use it, since sampling may end a stream early.
FULL_LENGTH_PROMPT = "The capital of Peru is"
GREEDY = common_pb2.SamplingParams(temperature=0.0)
MAX_MODEL_LEN = 2048  # the tiny models' max_position_embeddings
MAX_OUTPUT_TOKENS = 2000  # the longest generation: seconds of engine time


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, WorkerProcess]]:
    """The two pairs, started in parallel; whatever is still running is stopped at the end of the module."""
    log_dir = tmp_path_factory.mktemp("router-workers")
    model_dir = build_tiny_model(MODEL_CACHE_DIR / "tiny-llama-s", size="s")
    specs = {"cheap": ("tiny-cheap", "awq"), "accurate": ("tiny-accurate", "none")}
    started = {
        # The label is the pair's; the checkpoint is served as is (it is not AWQ-quantized).
        role: start_worker(model_dir, served_model_name=name, quantization=quantization, wait=False,
                           log_path=log_dir / f"{name}.log", extra_env={"QUANTMESH_WORKER_QUANTIZE_WEIGHTS": "false",
                                                                        "QUANTMESH_WORKER_MAX_MODEL_LEN": str(MAX_MODEL_LEN)})
        for role, (name, quantization) in specs.items()
    }
    try:
        for worker in started.values():
            worker.service.wait_until_serving(300.0)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def profiles(workers: dict[str, WorkerProcess], *, cheap_accuracy=(0.9, 0.5, 0.3),
             accurate_accuracy=(0.95, 0.9, 0.85)) -> ProfileDocument:
    return document(
        pair_dict("tiny-cheap", workers["cheap"].address, quantization="awq", price_per_hour_usd=0.5,
                  throughput_tokens_per_s=1000.0, ttft_p50_ms=30.0, ttft_p99_ms=60.0, itl_p50_ms=8.0,
                  accuracy=cheap_accuracy, max_model_len=MAX_MODEL_LEN),
        pair_dict("tiny-accurate", workers["accurate"].address, quantization="none", price_per_hour_usd=2.0,
                  throughput_tokens_per_s=500.0, ttft_p50_ms=60.0, ttft_p99_ms=120.0, itl_p50_ms=15.0,
                  accuracy=accurate_accuracy, max_model_len=MAX_MODEL_LEN),
    )


@pytest.fixture(scope="module")
def mesh(workers, redis_server, classifier_address, tmp_path_factory):
    """A router wired to the classifier, Redis (profiles published first) and the two workers."""
    prefix = f"test:{uuid.uuid4().hex}"
    store = ProfileStore(connect(redis_server.url), prefix)
    asyncio.run(store.publish(profiles(workers)))
    log_path = tmp_path_factory.mktemp("router") / "router.log"
    # A 3 s staleness window: the "killed before the first token" test freezes a worker that must still look
    # healthy when the request is routed.
    with start_router(log_path, redis_url=redis_server.url, classifier_address=classifier_address,
                      profiles_prefix=prefix,
                      extra_env={"QUANTMESH_ROUTER_LOAD_STALE_AFTER_MS": "3000",
                                 "QUANTMESH_ROUTER_CLASSIFIER_TIMEOUT_MS": "500"}) as router:
        yield {"router": router, "prefix": prefix, "workers": workers, "log": log_path}


@pytest.fixture
async def stubs(mesh):
    channel = grpc.aio.insecure_channel(mesh["router"].address)
    alive = sum(worker.service.exit_code() is None for worker in mesh["workers"].values())
    await wait_all_healthy(router_pb2_grpc.RouterServiceStub(channel), alive)
    yield router_pb2_grpc.RouterServiceStub(channel), router_pb2_grpc.RouterAdminServiceStub(channel)
    await channel.close()


def route_request(prompt: str, **requirements) -> router_pb2.RouteRequest:
    return router_pb2.RouteRequest(prompt=prompt, requirements=router_pb2.RoutingRequirements(
        max_output_tokens=requirements.get("max_output_tokens", 16),
        latency_budget_ms=requirements.get("latency_budget_ms", BUDGET_MS),
        required_accuracy=requirements.get("required_accuracy", REQUIRED_ACCURACY)))


def generate_request(prompt: str, sampling=GREEDY, **requirements) -> router_pb2.GenerateRequest:
    routed = route_request(prompt, **requirements)
    return router_pb2.GenerateRequest(prompt=prompt, requirements=routed.requirements, sampling=sampling)


async def wait_all_healthy(route: router_pb2_grpc.RouterServiceStub, expected: int, timeout_s: float = 20.0) -> None:
    """Until `expected` candidates are free of UNHEALTHY rejections (the router's load streams are up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        decision = (await route.Route(route_request(SIMPLE_PROMPT), timeout=5)).decision
        healthy = [c for c in decision.candidates
                   if router_pb2.REJECTION_REASON_UNHEALTHY not in [r.reason for r in c.rejections]]
        if len(healthy) >= expected:
            return
        assert time.monotonic() < deadline, f"workers not healthy for the router: {decision}"
        await asyncio.sleep(0.1)


async def collect(stream, decision_seen: bool = False) -> tuple[
        router_pb2.RouteDecision, list[common_pb2.TokenChunk], router_pb2.GenerationSummary]:
    decision, chunks, summary = None, [], None
    async for message in stream:
        kind = message.WhichOneof("event")
        if kind == "decision":
            assert decision is None and not chunks and not decision_seen, "the decision comes first, once"
            decision = message.decision
        elif kind == "chunk":
            chunks.append(message.chunk)
        else:
            summary = message.summary
    return decision, chunks, summary


def assert_contiguous(chunks: list[common_pb2.TokenChunk]) -> int:
    """Every token index exactly once, in order; returns the token count."""
    position = 0
    for chunk in chunks:
        assert chunk.first_token_index == position, "a token was lost or duplicated"
        position += len(chunk.token_ids)
    return position


def pair_name(pair: common_pb2.ModelQuantizationPair) -> str:
    return f"{pair.model_id}/{common_pb2.Quantization.Name(pair.quantization).removeprefix('QUANTIZATION_').lower()}"


async def wait_for_version(admin, version: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await admin.GetProfiles(router_pb2.GetProfilesRequest(), timeout=5)).version != version:
        assert time.monotonic() < deadline, f"router did not swap in version {version}"
        await asyncio.sleep(0.05)


async def wait_for_document(admin, document: ProfileDocument, timeout_s: float = 15.0) -> None:
    """Until the router serves `document` as stored (version, stamp and content), not just its version number."""
    deadline = time.monotonic() + timeout_s
    while ProfileDocument.model_validate_json(
            (await admin.GetProfiles(router_pb2.GetProfilesRequest(), timeout=5)).document_json) != document:
        assert time.monotonic() < deadline, f"router did not swap in version {document.version}"
        await asyncio.sleep(0.05)


async def test_simple_prompt_goes_to_the_cheap_pair_and_hard_prompt_to_the_accurate_pair(stubs) -> None:
    route, _ = stubs
    simple_decision, simple_chunks, simple_summary = await collect(
        route.Generate(generate_request(SIMPLE_PROMPT), timeout=60))
    hard_decision, hard_chunks, hard_summary = await collect(route.Generate(generate_request(HARD_PROMPT), timeout=60))

    assert not simple_decision.classifier_degraded and not hard_decision.classifier_degraded
    assert simple_decision.classification.tier == common_pb2.COMPLEXITY_TIER_SIMPLE
    assert hard_decision.classification.tier in (common_pb2.COMPLEXITY_TIER_COMPLEX, common_pb2.COMPLEXITY_TIER_HARD)
    assert simple_decision.outcome == hard_decision.outcome == router_pb2.ROUTE_OUTCOME_ROUTED
    assert pair_name(simple_summary.served_by) == "tiny-cheap/awq"
    assert pair_name(hard_summary.served_by) == "tiny-accurate/none"
    cheap_in_hard = next(c for c in hard_decision.candidates if c.pair.model_id == "tiny-cheap")
    assert [r.reason for r in cheap_in_hard.rejections] == [router_pb2.REJECTION_REASON_ACCURACY]

    for chunks, summary in ((simple_chunks, simple_summary), (hard_chunks, hard_summary)):
        assert assert_contiguous(chunks) == summary.usage.completion_tokens > 0
        assert summary.attempts == 1
        assert summary.estimated_cost_usd > 0
        assert summary.actual_cost_usd > 0
    # Actual cost is the worker's usage at the pair's price: tiny-cheap costs 0.5 USD/h / (1000 tok/s x 3600) per token.
    assert simple_summary.actual_cost_usd == pytest.approx(simple_summary.usage.total_tokens * 0.5 / 3.6e6)


async def test_caller_cancellation_reaches_the_worker(stubs, mesh) -> None:
    route, _ = stubs
    request = generate_request(FULL_LENGTH_PROMPT, sampling=GREEDY, max_output_tokens=MAX_OUTPUT_TOKENS,
                               latency_budget_ms=120_000)
    request.request_id = f"cancelled-{uuid.uuid4().hex}"
    executors = [process for worker in mesh["workers"].values() for process in engine_executors(worker.address)]
    with suspended(executors):
        call = route.Generate(request, timeout=60)
        # A step at a time until the first chunk is relayed: the engine does not wait for a slow reader.
        with paced_engine(executors):
            async for message in call:
                if message.HasField("decision"):
                    worker = next(w for w in mesh["workers"].values()
                                  if w.served_model_name == message.decision.chosen.model_id)
                elif message.HasField("chunk"):
                    break
        assert worker_load(worker.address).running_requests == 1
        call.cancel()
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = worker_pb2_grpc.InferenceWorkerServiceStub(channel)
        deadline = time.monotonic() + 10
        while True:
            load = (await stub.GetLoad(worker_pb2.GetLoadRequest(), timeout=5)).load
            if load.running_requests == 0 and load.waiting_requests == 0:
                break
            assert time.monotonic() < deadline, f"the worker still runs the cancelled request: {load}"
            await asyncio.sleep(0.05)
    # Aborted, not finished: the worker logs each engine request it aborts, with the cause.
    assert worker.service.log_path is not None
    aborts = [json.loads(line) for line in worker.service.log_path.read_text().splitlines()
              if '"engine_request_aborted"' in line and request.request_id in line]
    assert [(line["request_id"], line["reason"]) for line in aborts] == [(request.request_id, "cancelled")]


async def test_publishing_a_new_version_reroutes_the_next_request(stubs, mesh, redis_server) -> None:
    route, admin = stubs
    before = await admin.GetProfiles(router_pb2.GetProfilesRequest(), timeout=5)
    assert (await route.Route(route_request(HARD_PROMPT), timeout=5)).decision.chosen.model_id == "tiny-accurate"
    # The cheap pair is now measured as accurate on every tier: the hard prompt should go there.
    store = ProfileStore(connect(redis_server.url), mesh["prefix"])
    flipped = profiles(mesh["workers"], cheap_accuracy=(0.95, 0.95, 0.95))
    published = await admin.PublishProfiles(router_pb2.PublishProfilesRequest(
        document_json=flipped.to_json(), expected_version=before.version), timeout=5)
    await wait_for_version(admin, published.version)
    decision, _, summary = await collect(route.Generate(generate_request(HARD_PROMPT), timeout=60))
    assert decision.profiles_version == published.version
    assert pair_name(summary.served_by) == "tiny-cheap/awq"
    restored = await store.publish(profiles(mesh["workers"]))
    await wait_for_version(admin, restored.version)
    await store.client.aclose()


async def test_redis_killed_mid_run_routing_continues_on_the_last_good_profiles(stubs, mesh, redis_server) -> None:
    route, admin = stubs
    before = await admin.GetProfiles(router_pb2.GetProfilesRequest(), timeout=5)
    redis_server.kill()
    try:
        for prompt, expected in ((SIMPLE_PROMPT, "tiny-cheap/awq"), (HARD_PROMPT, "tiny-accurate/none")):
            decision, _, summary = await collect(route.Generate(generate_request(prompt), timeout=60))
            assert decision.profiles_version == before.version
            assert pair_name(summary.served_by) == expected
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await admin.PublishProfiles(router_pb2.PublishProfilesRequest(
                document_json=profiles(mesh["workers"]).to_json()), timeout=5)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        redis_server.start()
    # Redis is back (empty): the router reconnects, re-reads on resubscribing, and follows the next publish.
    store = ProfileStore(connect(redis_server.url), mesh["prefix"])
    republished = await store.publish(profiles(mesh["workers"], accurate_accuracy=(0.96, 0.9, 0.85)))
    # An emptied Redis numbers versions from 1 again, maybe the number the router already has: wait for the document.
    await wait_for_document(admin, republished)
    current = await admin.GetProfiles(router_pb2.GetProfilesRequest(), timeout=5)
    assert '"simple":0.96' in current.document_json
    assert current.version == republished.version
    await store.client.aclose()


async def test_budget_too_small_for_any_pair_falls_back_then_deadline_exceeded_without_hanging(stubs) -> None:
    route, _ = stubs
    started = time.monotonic()
    messages = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for message in route.Generate(generate_request(FULL_LENGTH_PROMPT, sampling=GREEDY, max_output_tokens=400,
                                                             latency_budget_ms=150), timeout=30):
            messages.append(message)
    elapsed_s = time.monotonic() - started
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed_s < 5.0
    decision = messages[0].decision
    assert decision.outcome == router_pb2.ROUTE_OUTCOME_FALLBACK
    assert decision.chosen.model_id == "tiny-accurate"  # the most accurate healthy pair, from the profiles
    assert all(router_pb2.REJECTION_REASON_LATENCY_BUDGET in [r.reason for r in c.rejections]
               for c in decision.candidates)
    # A budget already spent by the time a worker would be called: DEADLINE_EXCEEDED at once.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in route.Generate(generate_request(SIMPLE_PROMPT, latency_budget_ms=1), timeout=30):
            pass
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


# The destructive tests: they kill the workers, so they run last and in this order.

async def test_worker_killed_before_the_first_token_completes_on_another_pair(stubs, mesh) -> None:
    route, _ = stubs
    cheap = mesh["workers"]["cheap"]
    os.killpg(cheap.service.process.pid, signal.SIGSTOP)  # frozen: still "healthy" until its reports go stale
    try:
        stream = aiter(route.Generate(generate_request(SIMPLE_PROMPT), timeout=60))
        first = await anext(stream)
        assert first.decision.chosen.model_id == "tiny-cheap"
        cheap.service.kill()  # dies before producing a token
        _, chunks, summary = await collect(stream, decision_seen=True)
    finally:
        cheap.service.kill()
    assert pair_name(summary.served_by) == "tiny-accurate/none"
    assert summary.attempts == 2
    assert assert_contiguous(chunks) == summary.usage.completion_tokens


async def test_worker_killed_after_the_first_token_gives_unavailable_and_no_duplicate_tokens(stubs, mesh) -> None:
    route, _ = stubs
    accurate = mesh["workers"]["accurate"]
    executors = engine_executors(accurate.address)
    chunks: list[common_pb2.TokenChunk] = []

    async def read() -> None:
        request = generate_request(FULL_LENGTH_PROMPT, sampling=GREEDY, max_output_tokens=MAX_OUTPUT_TOKENS,
                                   latency_budget_ms=120_000)
        async for message in route.Generate(request, timeout=120):
            if message.HasField("chunk"):
                chunks.append(message.chunk)
            elif message.HasField("summary"):
                pytest.fail(f"the worker finished after it was killed: {message.summary}")

    with suspended(executors):
        reader = asyncio.create_task(read())
        # The engine makes a step at a time until the first chunk is relayed: its request is still running when
        # the worker (its whole process group) is frozen, so that no further token leaves it, and killed.
        with paced_engine(executors):
            while not chunks:
                assert not reader.done(), reader
                await asyncio.sleep(0.005)
        assert worker_load(accurate.address).running_requests == 1
        os.killpg(accurate.service.process.pid, signal.SIGSTOP)
        accurate.service.kill()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await reader
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "after" in info.value.details() and "relayed" in info.value.details()
    assert 1 <= assert_contiguous(chunks) < MAX_OUTPUT_TOKENS
