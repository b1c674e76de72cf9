"""Output tokens/s of the worker's adaptive coalescing window against a fixed 10 ms window, side by side in one run.

Two worker processes serve the tiny model "s" with real vLLM: one with the defaults (each stream's window is its share
of `stream_max_chunks_per_s`, clamped to [10, 100] ms) and one with the budget made unbounded, which keeps every
stream at the 10 ms floor (the worker's window before the budget existed). The same `AsyncLLM` called in-process runs beside
them as the reference. Each round runs the three paths in a rotating order (same prompts, greedy, every stream
generating `--max-output-tokens` tokens), each after the other engines have gone idle (`worker_stream.ENGINE_SETTLE_S`).

Figures per concurrency c: `adaptive_over_fixed_tokens_per_s_<c>` (median over rounds of the paired per-round
ratio), `adaptive_over_inprocess_tokens_per_s_<c>` and `fixed_over_inprocess_tokens_per_s_<c>` (ratios of medians).

Run: `.venv/bin/python -m benchmarks.worker_coalescing [--rounds 8] [--concurrency 16 64]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import grpc

from benchmarks.results_io import write_results
from benchmarks.worker_stream import ENGINE_SETTLE_S, _grpc_round, _inprocess_engine, _inprocess_round
from quantmesh.worker.v1 import worker_pb2_grpc
from services.worker.settings import WorkerSettings
from tools.mesh.launch import start_worker
from tools.paths import MODEL_CACHE_DIR
from tools.tiny_model.build import build_tiny_model

PATHS = ("adaptive", "fixed", "inprocess")
# An unbounded chunk budget: every stream's window stays at the 10 ms floor.
FIXED_WINDOW_ENV = {"QUANTMESH_WORKER_STREAM_MAX_CHUNKS_PER_S": "1e12"}


async def _run(
    model_dir: Path, addresses: dict[str, str], concurrencies: list[int], rounds: int, max_tokens: int
) -> tuple[dict[str, float], dict[str, Any]]:
    defaults = WorkerSettings(model=str(model_dir), served_model_name="bench")
    llm = await asyncio.to_thread(_inprocess_engine, model_dir, defaults)
    figures: dict[str, float] = {}
    per_round: dict[str, dict[str, list[float]]] = {}
    try:
        async with grpc.aio.insecure_channel(addresses["adaptive"]) as adaptive, grpc.aio.insecure_channel(
            addresses["fixed"]
        ) as fixed:
            stubs = {
                "adaptive": worker_pb2_grpc.InferenceWorkerServiceStub(adaptive),
                "fixed": worker_pb2_grpc.InferenceWorkerServiceStub(fixed),
            }
            for stub in stubs.values():  # warm-up
                await _grpc_round(stub, 4, 16)
            await _inprocess_round(llm, 4, 16, -1)
            for count in concurrencies:
                rates: dict[str, list[float]] = {path: [] for path in PATHS}
                for round_index in range(rounds):
                    shift = round_index % len(PATHS)  # rotate the order so drift in machine load hits all alike
                    for path in PATHS[shift:] + PATHS[:shift]:
                        await asyncio.sleep(ENGINE_SETTLE_S)
                        if path == "inprocess":
                            tokens, elapsed = await _inprocess_round(llm, count, max_tokens, round_index)
                        else:
                            tokens, elapsed = await _grpc_round(stubs[path], count, max_tokens)
                        if tokens != count * max_tokens:
                            raise RuntimeError(f"{path} produced {tokens} tokens, expected {count * max_tokens}")
                        rates[path].append(tokens / elapsed)
                median = {path: statistics.median(values) for path, values in rates.items()}
                paired = [a / f for a, f in zip(rates["adaptive"], rates["fixed"], strict=True)]
                figures[f"adaptive_over_fixed_tokens_per_s_{count}"] = round(statistics.median(paired), 3)
                figures[f"adaptive_over_inprocess_tokens_per_s_{count}"] = round(
                    median["adaptive"] / median["inprocess"], 3
                )
                figures[f"fixed_over_inprocess_tokens_per_s_{count}"] = round(median["fixed"] / median["inprocess"], 3)
                per_round[str(count)] = {f"{path}_tokens_per_s": [round(r, 1) for r in rates[path]] for path in PATHS}
                print(f"{count:>3} streams: " + "  ".join(f"{p} {median[p]:8.1f} tok/s" for p in PATHS), flush=True)
    finally:
        llm.shutdown()
    details = {
        "rounds": rounds,
        "max_output_tokens": max_tokens,
        "adaptive": {
            "stream_coalesce_window_ms": defaults.stream_coalesce_window_ms,
            "stream_coalesce_max_window_ms": defaults.stream_coalesce_max_window_ms,
            "stream_max_chunks_per_s": defaults.stream_max_chunks_per_s,
        },
        "fixed": {"stream_coalesce_window_ms": defaults.stream_coalesce_window_ms, "env": FIXED_WINDOW_ENV},
        "per_round": per_round,
    }
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--max-output-tokens", type=int, default=256)
    args = parser.parse_args()
    model_dir = build_tiny_model(MODEL_CACHE_DIR / "tiny-llama-s", size="s")
    log_dir = Path(tempfile.mkdtemp(prefix="worker-coalescing-"))
    workers = {
        "adaptive": start_worker(model_dir, served_model_name="adaptive", log_path=log_dir / "adaptive.log"),
        "fixed": start_worker(
            model_dir, served_model_name="fixed", log_path=log_dir / "fixed.log", extra_env=FIXED_WINDOW_ENV
        ),
    }
    load_before = list(os.getloadavg())
    try:
        figures, details = asyncio.run(
            _run(
                model_dir,
                {name: worker.address for name, worker in workers.items()},
                args.concurrency,
                args.rounds,
                args.max_output_tokens,
            )
        )
    finally:
        for worker in workers.values():
            worker.stop()
    details["load_average_before"] = load_before
    details["load_average_after"] = list(os.getloadavg())  # the machine is shared: high values mean noisy figures
    details["model"] = str(model_dir)
    details["method"] = (
        "three paths per round in rotating order, each after a 1.5 s settle; adaptive_over_fixed is the median of "
        "per-round ratios, the others ratios of medians; greedy decoding, every stream generates max_output_tokens"
    )
    print(write_results("worker_coalescing", figures, details))


if __name__ == "__main__":
    main()
