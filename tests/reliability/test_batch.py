"""Batches on a real mesh (Redis with AOF, classifier, router, two synthetic workers, batch consumers as processes):
every request gets exactly one result, through consumer kills (kill -9) and a Redis restart; a cancelled batch
stops; bad input is refused before anything is queued."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
import redis.asyncio as aioredis

from clients.batches import Batch, BatchRequest
from clients.messages import ChatMessage, Sampling
from clients.sdk import AsyncQuantmeshClient
from core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from core.vocabulary import BatchStatus, ChatRole
from services.router.batch.store import queue_key
from tests.fixtures.reliability import LocalMesh
from tests.fixtures.router import start_router
from tests.fixtures.waiting import await_until
from tests.reliability.meshes import synthetic_pair

MAX_ITEMS = 500
VISIBILITY_TIMEOUT_MS = 3000
# A consumer's entries are reclaimed after the visibility timeout: the batch budget stays below it.
BUDGET_MS = 2000
CONSUMER_ENV = {"QUANTMESH_BATCH_VISIBILITY_TIMEOUT_MS": str(VISIBILITY_TIMEOUT_MS),
                "QUANTMESH_BATCH_RECLAIM_INTERVAL_MS": "250", "QUANTMESH_BATCH_CONCURRENCY": "8"}


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    async with LocalMesh(tmp_path_factory.mktemp("batch-mesh"), synthetic_pair(), redis_appendonly=True,
                         router_env={"QUANTMESH_ROUTER_BATCH_MAX_ITEMS": str(MAX_ITEMS),
                                     "QUANTMESH_ROUTER_BATCH_MAX_LATENCY_BUDGET_MS": str(BUDGET_MS),
                                     "QUANTMESH_ROUTER_CLASSIFIER_TIMEOUT_MS": "500"}) as running:
        await running.start_consumer("batch-a", CONSUMER_ENV)
        yield running


@pytest.fixture
async def client(mesh: LocalMesh):
    async with AsyncQuantmeshClient(mesh.router_address) as connected:
        yield connected


def requests(count: int, prefix: str = "r") -> list[BatchRequest]:
    """Raw prompts and chats, alternately, 6 output tokens each (~120 ms on a synthetic worker)."""
    made = []
    for index in range(count):
        prompt = (f"Name {index} rivers." if index % 2 else
                  [ChatMessage(ChatRole.USER, f"What is {index} + {index}?")])
        made.append(BatchRequest(f"{prefix}-{index}", prompt, max_output_tokens=6, sampling=Sampling(temperature=0)))
    return made


async def queue_depth(mesh: LocalMesh) -> int:
    client = aioredis.Redis.from_url(mesh.redis.url)
    try:
        return int(await client.xlen(queue_key()))
    finally:
        await client.aclose()


async def finished(client: AsyncQuantmeshClient, batch_id: str, timeout_s: float) -> Batch:
    async def done() -> Batch | None:
        batch = await client.batches.get(batch_id)
        return batch if batch.finished else None
    return await await_until(done, timeout_s, 0.2)


async def test_every_request_gets_one_output_and_watch_follows_it(mesh: LocalMesh,
                                                                   client: AsyncQuantmeshClient) -> None:
    batch = await client.batches.create(requests(40), latency_budget_ms=BUDGET_MS)
    assert (batch.status, batch.total, batch.done, batch.latency_budget_ms) == (BatchStatus.IN_PROGRESS, 40, 0,
                                                                                BUDGET_MS)
    seen = [status async for status in client.batches.watch(batch.batch_id)]
    assert [s.done for s in seen] == sorted(s.done for s in seen) and seen[-1].status is BatchStatus.COMPLETED
    assert seen[-1].succeeded == 40 and seen[-1].expires_at is not None and seen[-1].finished_at is not None
    results = [result async for result in client.batches.results(batch.batch_id)]
    assert [r.custom_id for r in results] == [f"r-{i}" for i in range(40)]
    assert all(r.error_code is None and r.usage is not None and r.usage.completion_tokens == 6 for r in results)
    # Cost first: the cheaper synthetic pair serves what it is accurate enough for.
    assert {str(r.served_by) for r in results} <= {"syn-small/none", "syn-large/none"}
    assert all(r.queue_wait_ms >= 0 and r.attempts == 1 for r in results)
    assert await queue_depth(mesh) == 0


async def test_killed_consumers_and_a_redis_restart_lose_and_duplicate_nothing(
        mesh: LocalMesh, client: AsyncQuantmeshClient) -> None:
    await mesh.start_consumer("batch-b", CONSUMER_ENV)
    batch = await client.batches.create(requests(300, "k"), latency_budget_ms=BUDGET_MS)

    async def progressed(at_least: int) -> bool:
        return (await client.batches.get(batch.batch_id)).done >= at_least

    await await_until(lambda: progressed(30), 30, 0.05)
    await mesh.kill_consumer("batch-a")  # kill -9 with requests in flight: reclaimed after the visibility timeout
    await await_until(lambda: progressed(100), 60, 0.05)
    await asyncio.to_thread(mesh.redis.restart)
    await await_until(lambda: progressed(150), 60, 0.05)
    await mesh.kill_consumer("batch-b")
    await mesh.start_consumer("batch-a", CONSUMER_ENV)
    done = await finished(client, batch.batch_id, 120)
    assert (done.status, done.succeeded, done.failed, done.cancelled) == (BatchStatus.COMPLETED, 300, 0, 0)
    results = [result async for result in client.batches.results(batch.batch_id)]
    counts = Counter(result.custom_id for result in results)
    assert len(counts) == 300 and set(counts.values()) == {1}
    assert all(result.error_code is None for result in results)
    # The kills left entries pending; they were reclaimed and served again (attempts > 1), stored once.
    assert any(result.attempts > 1 for result in results)
    assert await queue_depth(mesh) == 0


async def test_a_cancelled_batch_stops_and_its_entries_are_dropped(mesh: LocalMesh,
                                                                    client: AsyncQuantmeshClient) -> None:
    for name in [name for name, process in mesh.consumers.items() if process.exit_code() is None]:
        await mesh.kill_consumer(name)
    batch = await client.batches.create(requests(25, "c"), latency_budget_ms=BUDGET_MS)
    cancelled = await client.batches.cancel(batch.batch_id)
    assert (cancelled.status, cancelled.cancelled, cancelled.succeeded) == (BatchStatus.CANCELLED, 25, 0)
    results = [result async for result in client.batches.results(batch.batch_id)]
    assert {result.error_code for result in results} == {"CANCELLED"} and len(results) == 25
    await mesh.start_consumer("batch-a", CONSUMER_ENV)
    await await_until(lambda: _drained(mesh), 30, 0.1)
    assert (await client.batches.get(batch.batch_id)).cancelled == 25  # no consumer stored anything else


async def _drained(mesh: LocalMesh) -> bool:
    return await queue_depth(mesh) == 0


async def test_bad_batches_are_refused_before_anything_is_queued(mesh: LocalMesh,
                                                                 client: AsyncQuantmeshClient) -> None:
    before = await queue_depth(mesh)
    bad = [*requests(3), BatchRequest("blank", "   ", max_output_tokens=6)]
    with pytest.raises(InvalidArgumentError, match=r"items\[3\] \(custom_id 'blank'\)\.prompt: must not be empty"):
        await client.batches.create(bad)
    with pytest.raises(InvalidArgumentError, match=r"items\[1\] \(custom_id 'r-0'\)\.custom_id: also the custom_id "
                                                   r"of items\[0\]"):
        await client.batches.create([*requests(1), *requests(1)])
    with pytest.raises(InvalidArgumentError, match=r"items\[0\].*max_output_tokens: must be at least 1"):
        await client.batches.create([BatchRequest("zero", "hi", max_output_tokens=0)])
    with pytest.raises(InvalidArgumentError, match=f"over this router's limit of {MAX_ITEMS} per batch"):
        await client.batches.create(requests(MAX_ITEMS + 1))
    with pytest.raises(InvalidArgumentError, match=f"latency_budget_ms: {BUDGET_MS + 1} is over"):
        await client.batches.create(requests(1), latency_budget_ms=BUDGET_MS + 1)
    with pytest.raises(InvalidArgumentError, match="items: at least one request"):
        await client.batches.create([])
    assert await queue_depth(mesh) == before
    for call in (client.batches.get, client.batches.cancel):
        with pytest.raises(NotFoundError, match="no batch 'f00'"):
            await call("f00")
    with pytest.raises(NotFoundError):
        async for _ in client.batches.watch("f00"):
            pass


async def test_a_router_without_redis_says_batches_need_it(mesh: LocalMesh, tmp_path) -> None:
    with start_router(tmp_path / "router.log", static_profiles_path=mesh.profiles_path) as router:
        async with AsyncQuantmeshClient(router.address) as bare:
            with pytest.raises(FailedPreconditionError, match="batches need the Redis store"):
                await bare.batches.create(requests(1))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


async def test_the_cli_submits_a_jsonl_file_and_writes_openai_batch_output(mesh: LocalMesh, tmp_path) -> None:
    if mesh.consumers["batch-a"].exit_code() is not None:
        await mesh.start_consumer("batch-a", CONSUMER_ENV)
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": f"Say {i}."}]}}
             for i in range(12)]
    good = tmp_path / "batch.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + "{oops\n" + json.dumps({**lines[0], "url": "/v1/embeddings"}) + "\n")
    before = await queue_depth(mesh)
    refused = await asyncio.to_thread(_cli, "--router", mesh.router_address, "batch", "submit", str(bad))
    assert refused.returncode == 2, refused.stderr
    assert "line 13: not JSON" in refused.stderr and "line 14: url: must be one of" in refused.stderr
    assert await queue_depth(mesh) == before  # nothing was submitted
    out = tmp_path / "results.jsonl"
    done = await asyncio.to_thread(_cli, "--router", mesh.router_address, "--budget-ms", str(BUDGET_MS), "batch",
                                   "submit", str(good), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "12 succeeded, 0 failed, 0 cancelled of 12" in done.stdout
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["custom_id"] for line in written] == [f"q{i}" for i in range(12)]
    assert all(line["error"] is None and line["response"]["body"]["usage"]["completion_tokens"] == 4
               for line in written)
