"""Output tokens/s through the gRPC InferenceWorker vs the same vLLM `AsyncLLM` called in-process, side by side.

One run starts a worker process (`python -m services.worker`, tiny model "s", real vLLM) and, in this process, an
`AsyncLLM` built as the worker builds its own (`services.worker.vllm_engine.build_async_llm`: the same engine
arguments, the stat logger behind the load reports, vLLM's environment-variable cache). For each concurrency (1, 16,
64 streams) it runs rounds alternately on each path (same prompts, greedy, every stream generating exactly
`--max-output-tokens` tokens: raw prompts of the tiny model chosen not to emit end-of-sequence) and reports the
median over rounds of total output tokens / wall time.

Placement: the worker keeps its own threads off its engine's bound cores (`services.worker.cpu_affinity`, setting
`isolate_engine_cores`). In the in-process rounds this process is the `AsyncLLM`'s front end, the part the worker
replaces, and it gets the same treatment: pinned off both engines' cores, normal priority. In the gRPC rounds it is
only the caller, which in a deployment runs on another host; here it has to share the two cores with the system under
test, so it runs with `SCHED_IDLE` on any core, on the cycles the worker and its engine leave idle (a starved caller
can only lengthen the gRPC rounds, never shorten them).

Figures: `grpc_tokens_per_s_<c>`, `inprocess_tokens_per_s_<c>` and `grpc_over_inprocess_tokens_per_s_<c>` (the ratio
of the medians; target >= 0.90 at 16 and 64). Details also give, per path and concurrency, the CPU cores each group of
processes used during the rounds (median over rounds of CPU seconds / wall seconds, from psutil): this process (the
gRPC client, or the in-process `AsyncLLM`'s front end), the worker process, and each engine's own processes.

Run: `.venv/bin/python -m benchmarks.worker_stream [--rounds 7] [--max-output-tokens 256]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import psutil

from benchmarks.results_io import write_results
from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.worker.cpu_affinity import engine_bound_cores, keep_off_cores, thread_ids
from services.worker.load import LoadTracker
from services.worker.settings import WorkerSettings
from services.worker.vllm_engine import build_async_llm
from tools.mesh.launch import start_worker
from tools.paths import MODEL_CACHE_DIR
from tools.tiny_model.build import build_tiny_model

CONCURRENCIES = (1, 16, 64)
# vLLM's model-executor process busy-polls its shared-memory queue (sched_yield) for 1 s after its last message
# (`vllm.distributed.device_communicators.shm_broadcast`, busy_loop_s=1) and both engines' executors are bound to the
# same core here: each path starts once the other's executor has gone idle, or it runs at about half speed.
ENGINE_SETTLE_S = 1.5
# Prompts whose greedy continuation runs to max_output_tokens on both tiny models (no end-of-sequence).
COUNTRIES = ("France", "Spain", "Italy", "Peru", "Kenya", "Norway")


def _schedule_this_process(policy: int, cores: set[int]) -> None:
    """Puts every thread of this process under scheduling `policy` on `cores` (threads started later inherit both)."""
    for tid in thread_ids("self"):
        with contextlib.suppress(ProcessLookupError):  # a thread that exited meanwhile
            os.sched_setscheduler(tid, policy, os.sched_param(0))
            os.sched_setaffinity(tid, cores)


def _prompts(count: int) -> list[str]:
    return [f"The capital of {COUNTRIES[i % len(COUNTRIES)]} is" for i in range(count)]


async def _grpc_round(stub: worker_pb2_grpc.InferenceWorkerServiceStub, count: int, max_tokens: int) -> tuple[int, float]:
    async def one(prompt: str) -> int:
        received = 0
        request = worker_pb2.GenerateRequest(
            prompt=prompt, max_output_tokens=max_tokens, sampling=common_pb2.SamplingParams(temperature=0.0)
        )
        async for response in stub.Generate(request):
            if response.HasField("chunk"):
                received += len(response.chunk.token_ids)
        return received

    started = time.perf_counter()
    tokens = await asyncio.gather(*(one(prompt) for prompt in _prompts(count)))
    return sum(tokens), time.perf_counter() - started


def _process_groups(worker_pid: int) -> dict[str, list[psutil.Process]]:
    """The processes whose CPU time is accounted, by group: this process, the worker, the worker's engine processes,
    and the in-process `AsyncLLM`'s engine processes (this process's other descendants)."""
    this, worker = psutil.Process(), psutil.Process(worker_pid)
    worker_engine = worker.children(recursive=True)
    worker_tree = {worker.pid, *(child.pid for child in worker_engine)}
    return {
        "this_process": [this],
        "worker_process": [worker],
        "worker_engine": worker_engine,
        "inprocess_engine": [child for child in this.children(recursive=True) if child.pid not in worker_tree],
    }


def _cpu_s(groups: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """User + system CPU seconds used so far by each group's processes (not their children)."""
    return {name: sum(sum(process.cpu_times()[:2]) for process in processes) for name, processes in groups.items()}


async def _inprocess_round(llm: Any, count: int, max_tokens: int, round_index: int) -> tuple[int, float]:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, output_kind=RequestOutputKind.DELTA)

    async def one(index: int, prompt: str) -> int:
        received = 0
        ids = llm.get_tokenizer().encode(prompt)
        (engine_input,) = llm.renderer.render_cmpl([{"prompt_token_ids": ids}])
        async for output in llm.generate(engine_input, params, f"bench-{round_index}-{count}-{index}"):
            received += len(output.outputs[0].token_ids)
        return received

    started = time.perf_counter()
    tokens = await asyncio.gather(*(one(i, prompt) for i, prompt in enumerate(_prompts(count))))
    return sum(tokens), time.perf_counter() - started


def _inprocess_engine(model_dir: Path, settings: WorkerSettings) -> Any:
    """The worker's own `AsyncLLM` (`services.worker.vllm_engine.build_async_llm`): the same engine arguments, stat
    logger and environment-variable cache, so the two paths differ only by the worker's gRPC layer."""
    return build_async_llm(
        {
            "model": str(model_dir),
            "max_model_len": settings.max_model_len,
            "max_num_seqs": settings.max_num_seqs,
            "gpu_memory_utilization": settings.gpu_memory_utilization,
            "kv_cache_memory_bytes": settings.kv_cache_memory_bytes,
        },
        LoadTracker(),
    )


async def _run(model_dir: Path, address: str, worker_pid: int, rounds: int,
               max_tokens: int) -> tuple[dict[str, float], dict]:
    defaults = WorkerSettings(model=str(model_dir), served_model_name="bench")
    llm = await asyncio.to_thread(_inprocess_engine, model_dir, defaults)
    groups = _process_groups(worker_pid)
    engine_cores = engine_bound_cores(p.pid for p in (*groups["worker_engine"], *groups["inprocess_engine"]))
    all_cores = os.sched_getaffinity(0)
    front_end_cores = keep_off_cores(engine_cores) or all_cores
    figures: dict[str, float] = {}
    details: dict[str, Any] = {
        "rounds": rounds,
        "max_output_tokens": max_tokens,
        "stream_coalesce_window_ms": defaults.stream_coalesce_window_ms,
        "stream_coalesce_min_streams": defaults.stream_coalesce_min_streams,
        "stream_coalesce_max_window_ms": defaults.stream_coalesce_max_window_ms,
        "stream_max_chunks_per_s": defaults.stream_max_chunks_per_s,
        "engine_settle_s": ENGINE_SETTLE_S,
        "engine_bound_cores": sorted(engine_cores),
        "front_end_cores": sorted(front_end_cores),
        "caller": "SCHED_IDLE on cores " + ",".join(map(str, sorted(all_cores))),
        "load_average_before": list(os.getloadavg()),
        "per_round": {},
    }
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = worker_pb2_grpc.InferenceWorkerServiceStub(channel)
            await _grpc_round(stub, 4, 16)  # warm-up both paths
            await _inprocess_round(llm, 4, 16, -1)
            for count in CONCURRENCIES:
                grpc_rates, inprocess_rates = [], []
                cores: dict[str, dict[str, list[float]]] = {"grpc": {}, "inprocess": {}}
                for round_index in range(rounds):
                    # Alternate which path goes first so drift in machine load hits both alike.
                    order = ("grpc", "inprocess") if round_index % 2 == 0 else ("inprocess", "grpc")
                    for path in order:
                        await asyncio.sleep(ENGINE_SETTLE_S)
                        cpu_before = _cpu_s(groups)
                        if path == "grpc":
                            _schedule_this_process(os.SCHED_IDLE, all_cores)
                            try:
                                tokens, elapsed = await _grpc_round(stub, count, max_tokens)
                            finally:
                                _schedule_this_process(os.SCHED_OTHER, front_end_cores)
                            grpc_rates.append(tokens / elapsed)
                        else:
                            tokens, elapsed = await _inprocess_round(llm, count, max_tokens, round_index)
                            inprocess_rates.append(tokens / elapsed)
                        for group, used_s in _cpu_s(groups).items():
                            cores[path].setdefault(group, []).append((used_s - cpu_before[group]) / elapsed)
                        if tokens != count * max_tokens:
                            raise RuntimeError(f"{path} produced {tokens} tokens, expected {count * max_tokens}")
                grpc_median = statistics.median(grpc_rates)
                inprocess_median = statistics.median(inprocess_rates)
                figures[f"grpc_tokens_per_s_{count}"] = round(grpc_median, 1)
                figures[f"inprocess_tokens_per_s_{count}"] = round(inprocess_median, 1)
                figures[f"grpc_over_inprocess_tokens_per_s_{count}"] = round(grpc_median / inprocess_median, 3)
                details["per_round"][str(count)] = {
                    "grpc_tokens_per_s": [round(r, 1) for r in grpc_rates],
                    "inprocess_tokens_per_s": [round(r, 1) for r in inprocess_rates],
                    "cpu_cores_used": {path: {group: round(statistics.median(values), 2)
                                              for group, values in by_group.items()}
                                       for path, by_group in cores.items()},
                }
                print(
                    f"{count:>3} streams: grpc {grpc_median:8.1f} tok/s  in-process {inprocess_median:8.1f} tok/s  "
                    f"ratio {grpc_median / inprocess_median:.3f}",
                    flush=True,
                )
    finally:
        llm.shutdown()
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-output-tokens", type=int, default=256)
    args = parser.parse_args()
    model_dir = build_tiny_model(MODEL_CACHE_DIR / "tiny-llama-s", size="s")
    log_path = Path(tempfile.mkdtemp(prefix="worker-stream-")) / "worker.log"
    worker = start_worker(model_dir, served_model_name="tiny-s", log_path=log_path)
    try:
        figures, details = asyncio.run(_run(model_dir, worker.address, worker.service.process.pid, args.rounds,
                                            args.max_output_tokens))
    finally:
        worker.stop()
    details["load_average_after"] = list(os.getloadavg())  # the machine is shared: high values mean noisy figures
    details["model"] = str(model_dir)
    details["worker_log"] = str(log_path)
    details["method"] = (
        "median over rounds of (total output tokens / wall time) per path; paths alternate within each round; "
        "greedy decoding, every stream generates max_output_tokens tokens"
    )
    print(write_results("worker_stream", figures, details))


if __name__ == "__main__":
    main()
