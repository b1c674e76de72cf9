"""The batch path under load and faults: 2,000 requests, every one with exactly one result.

Setup (real processes on this machine): redis-server with AOF (as shipped), two synthetic InferenceWorkers (a
cheaper and a dearer pair; deterministic tokens at a fixed rate behind the real servicer), a router (classifier in
process) and two batch consumers (`python -m services.router.batch`, concurrency 8 each, visibility timeout 5 s).

Phases:
1. Design load: 1,000 requests as 100 batches of 10, one batch every 0.25 s (40 requests/s, below what the two
   consumers serve); consumer A is killed with kill -9 halfway through and restarted 1 s later.
2. Burst: 1,000 requests in one batch, above capacity; consumer B is killed with kill -9 once 200 of them have
   results and restarted 1 s later, and Redis is restarted (SIGTERM, which flushes the AOF, then start) once 500
   have.
Every batch is then read back in full.

Figures: `requests`, `lost` (requests without a result), `duplicated` (results beyond one per custom_id, or a
custom_id that is not the request's), `queue_wait_p99_ms` / `queue_wait_p50_ms` (results of phase 1: queueing to
the start of the attempt that produced the result), `burst_drain_s` (burst batch created -> its last result), and
`reattempted` (results whose request was attempted more than once: the kills' reclaimed entries).

Run: `.venv/bin/python -m benchmarks.batch_load` (about 2 min). Writes `benchmarks/results/batch.json`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.results_io import write_results
from benchmarks.router_overhead import percentile, start
from clients.batches import Batch, BatchRequest, BatchResult
from clients.messages import Sampling
from clients.sdk import AsyncQuantmeshClient
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.profiles import ProfileDocument, derived_cost_per_1m_tokens_usd
from tools.mesh.mesh import RedisProcess
from tools.mesh.processes import ServiceProcess

DESIGN_BATCHES = 100
DESIGN_BATCH_SIZE = 10
DESIGN_INTERVAL_S = 0.25
BURST_SIZE = 1000
OUTPUT_TOKENS = 8
SYNTHETIC_TOKENS_PER_S = 200.0  # 8 tokens ~ 45 ms per request on a worker
CONSUMER_CONCURRENCY = 8
VISIBILITY_TIMEOUT_MS = 5000
BUDGET_MS = 2000
START_TIMEOUT_S = 60.0


def _pair(model_id: str, endpoint: str, price_per_hour_usd: float, accuracy: float) -> dict:
    return {"model_id": model_id, "quantization": "none", "endpoint": endpoint,
            "instance_price_per_hour_usd": price_per_hour_usd, "throughput_tokens_per_s": 400.0,
            "cost_per_1m_tokens_usd": derived_cost_per_1m_tokens_usd(price_per_hour_usd, 400.0),
            "ttft_p50_ms": 5.0, "ttft_p99_ms": 20.0, "itl_p50_ms": 1000.0 / SYNTHETIC_TOKENS_PER_S,
            "accuracy_by_tier": {"simple": accuracy, "complex": accuracy, "hard": accuracy},
            "max_model_len": 512, "gpu_memory_gib": 0.0, "tokenization_ratio": 1.0,
            "measured_at": "2026-12-07T00:00:00Z"}


def _requests(prefix: str, count: int) -> list[BatchRequest]:
    return [BatchRequest(f"{prefix}-{index}", f"Name {index} rivers of Europe.", max_output_tokens=OUTPUT_TOKENS,
                         sampling=Sampling(temperature=0.0)) for index in range(count)]


async def _until_done(client: AsyncQuantmeshClient, batch_id: str, at_least: int, timeout_s: float = 300) -> Batch:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = await client.batches.get(batch_id)
        if batch.done >= at_least:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id}: {batch.done} of {at_least} after {timeout_s} s"
        await asyncio.sleep(0.05)


async def run(log_dir: Path) -> tuple[dict[str, float], dict]:
    redis = RedisProcess("redis-server", log_dir, log_dir / "redis.log")  # AOF on, as shipped
    redis.start()
    processes: list[ServiceProcess] = []
    consumers: dict[str, ServiceProcess] = {}
    try:
        workers = {name: start(f"worker-{name}", "services.worker", {
            "QUANTMESH_WORKER_ENGINE": "synthetic", "QUANTMESH_WORKER_MODEL": f"synthetic:{name}",
            "QUANTMESH_WORKER_SERVED_MODEL_NAME": name, "QUANTMESH_WORKER_QUANTIZATION": "none",
            "QUANTMESH_WORKER_MAX_MODEL_LEN": "512",
            "QUANTMESH_WORKER_SYNTHETIC_TOKENS_PER_S": str(SYNTHETIC_TOKENS_PER_S),
            "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": "5"}, log_dir, START_TIMEOUT_S) for name in ("syn-small", "syn-large")}
        processes.extend(workers.values())
        document = ProfileDocument.model_validate({"pairs": [
            _pair("syn-small", workers["syn-small"].address, 0.5, 0.9),
            _pair("syn-large", workers["syn-large"].address, 1.0, 0.95)]})
        profiles = log_dir / "profiles.json"
        profiles.write_text(document.to_json())
        router = start("router", "services.router", {
            "QUANTMESH_ROUTER_REDIS_URL": redis.url, "QUANTMESH_ROUTER_STATIC_PROFILES_PATH": str(profiles),
            "QUANTMESH_ROUTER_CLASSIFIER_ARTIFACT_DIR": str(DEFAULT_ARTIFACT_DIR),
            "QUANTMESH_ROUTER_PROFILES_PREFIX": "bench:profiles"}, log_dir, START_TIMEOUT_S)
        processes.append(router)

        def start_consumer(name: str) -> None:
            consumers[name] = start(name, "services.router.batch", {
                "QUANTMESH_BATCH_REDIS_URL": redis.url, "QUANTMESH_BATCH_ROUTER_ADDRESS": router.address,
                "QUANTMESH_BATCH_CONSUMER_NAME": name, "QUANTMESH_BATCH_CONCURRENCY": str(CONSUMER_CONCURRENCY),
                "QUANTMESH_BATCH_VISIBILITY_TIMEOUT_MS": str(VISIBILITY_TIMEOUT_MS),
                "QUANTMESH_BATCH_RECLAIM_INTERVAL_MS": "500"}, log_dir, START_TIMEOUT_S)

        async def kill_and_restart(name: str) -> None:
            consumers[name].kill()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(start_consumer, name)

        for name in ("consumer-a", "consumer-b"):
            start_consumer(name)
        faults: list[str] = []
        async with AsyncQuantmeshClient(router.address) as client:
            design: list[str] = []
            started = time.monotonic()
            kill_task = None
            for index in range(DESIGN_BATCHES):
                design.append((await client.batches.create(_requests(f"d{index}", DESIGN_BATCH_SIZE),
                                                           latency_budget_ms=BUDGET_MS)).batch_id)
                if index == DESIGN_BATCHES // 2:
                    kill_task = asyncio.create_task(kill_and_restart("consumer-a"))
                    faults.append(f"kill -9 consumer-a after {len(design) * DESIGN_BATCH_SIZE} design requests")
                await asyncio.sleep(max(0.0, started + (index + 1) * DESIGN_INTERVAL_S - time.monotonic()))
            design_rate = DESIGN_BATCHES * DESIGN_BATCH_SIZE / (time.monotonic() - started)
            assert kill_task is not None
            await kill_task
            for batch_id in design:
                await _until_done(client, batch_id, DESIGN_BATCH_SIZE)

            burst_started = time.monotonic()
            burst = (await client.batches.create(_requests("burst", BURST_SIZE), latency_budget_ms=BUDGET_MS)).batch_id
            await _until_done(client, burst, 200)
            await kill_and_restart("consumer-b")
            faults.append("kill -9 consumer-b after 200 burst results")
            await _until_done(client, burst, 500)
            await asyncio.to_thread(lambda: (redis.stop(10.0), redis.start()))  # SIGTERM flushes the AOF
            faults.append("redis-server restarted after 500 burst results")
            await _until_done(client, burst, BURST_SIZE)
            burst_drain_s = time.monotonic() - burst_started

            results: dict[str, list[BatchResult]] = {}
            for batch_id in (*design, burst):
                results[batch_id] = [result async for result in client.batches.results(batch_id)]
    finally:
        for process in (*consumers.values(), *processes):
            process.stop(15.0)
        redis.stop(10.0)

    expected = {f"d{i}-{j}" for i in range(DESIGN_BATCHES) for j in range(DESIGN_BATCH_SIZE)}
    expected |= {f"burst-{j}" for j in range(BURST_SIZE)}
    every = [result for batch in results.values() for result in batch]
    counts = Counter(result.custom_id for result in every)
    lost = len(expected - counts.keys())
    duplicated = sum(count - 1 for count in counts.values()) + len(counts.keys() - expected)
    design_waits = [r.queue_wait_ms for batch_id in design for r in results[batch_id]]
    burst_waits = [r.queue_wait_ms for r in results[burst]]
    figures = {
        "requests": len(expected), "lost": lost, "duplicated": duplicated,
        "failed": sum(result.error_code is not None for result in every),
        "queue_wait_p99_ms": round(percentile(design_waits, 99), 1),
        "queue_wait_p50_ms": round(statistics.median(design_waits), 1),
        "burst_drain_s": round(burst_drain_s, 2),
        "reattempted": sum(result.attempts > 1 for result in every),
    }
    details = {
        "design_rate_requests_per_s": round(design_rate, 1),
        "design_queue_wait_max_ms": round(max(design_waits), 1),
        "design_reattempted": sum(r.attempts > 1 for batch_id in design for r in results[batch_id]),
        "burst_queue_wait_p50_ms": round(statistics.median(burst_waits), 1),
        "burst_queue_wait_max_ms": round(max(burst_waits), 1),
        "burst_throughput_requests_per_s": round(BURST_SIZE / burst_drain_s, 1),
        "faults": faults,
        "served_by": dict(Counter(str(r.served_by) for r in every if r.served_by is not None)),
        "setup": {"consumers": 2, "consumer_concurrency": CONSUMER_CONCURRENCY,
                  "visibility_timeout_ms": VISIBILITY_TIMEOUT_MS, "latency_budget_ms": BUDGET_MS,
                  "output_tokens": OUTPUT_TOKENS, "synthetic_tokens_per_s": SYNTHETIC_TOKENS_PER_S},
    }
    return figures, details


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="batch-load-") as directory:
        figures, details = asyncio.run(run(Path(directory)))
    path = write_results("batch", figures, details)
    print(path)
    for name, value in figures.items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
