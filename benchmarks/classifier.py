"""Classifier latency and throughput: `python -m benchmarks.classifier` -> benchmarks/results/classifier.json.

Measures, in one run on the same texts (a fixed sample of held-out GSM8K / MMLU / intent test texts):
- in-process: `ClassifierModel.classify` per query (p50 / p99 ms);
- gRPC unary `Classify` against the real service (a child process) with 1 and 16 concurrent callers (asyncio
  clients on one channel; p50 / p99 ms per call, and calls/s);
- `ClassifyStream` throughput: classifications per second through one bidi stream, end to end (every response
  received and checked in order), from the blocking stub (the figure: median of `STREAM_ROUNDS` streams) and from
  the asyncio stub (in details, one stream).
Figures: `inprocess_p50_ms` (target <= 1), `grpc_p50_ms` (1 caller; target <= 2), `stream_per_s` (target >= 2,000)
for the shipped artifact (static encoder), and the same three for each contextual-encoder artifact of `SETTINGS`
(`minilm_*`: the wheel's MiniLM; `minilm_finetuned_*`: its top layers fine-tuned) in the same run, on fewer calls
(`SETTING_CALLS`: they are about thirty times slower per text).
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.results_io import write_results
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR, FINETUNED_ARTIFACT_DIR, MINILM_ARTIFACT_DIR
from core.classifier_model.model import ClassifierModel
from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from tools.classifier_training.splits import TEST
from tools.classifier_training.train import DEFAULT_SEED
from tools.classifier_training.training_data import build_training_sets
from tools.mesh.launch import start_classifier
from tools.paths import DATA_DIR

SAMPLE_TEXTS = 1000
WARM_UP = 200
UNARY_CALLS = 2000
STREAM_ITEMS = 20000
STREAM_ROUNDS = 5
SETTINGS = {
    "minilm": MINILM_ARTIFACT_DIR,
    "minilm_finetuned": FINETUNED_ARTIFACT_DIR,
}
SETTING_CALLS = 300


def sample_texts() -> list[str]:
    """A fixed sample of held-out texts: real prompt lengths and kinds, deterministic."""
    sets = build_training_sets(DATA_DIR, DEFAULT_SEED)
    texts = [p.prompt for p in sets.complexity[TEST]] + [e.text for e in sets.intent[TEST]]
    return random.Random(0).sample(texts, SAMPLE_TEXTS)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "count": int(values.size),
    }


def bench_in_process(texts: list[str], artifact_dir: Path = DEFAULT_ARTIFACT_DIR, repeat: int = 2) -> dict[str, float]:
    model = ClassifierModel.load(artifact_dir)
    for text in texts[:WARM_UP]:
        model.classify(text)
    times = []
    for text in texts * repeat:
        started = time.perf_counter()
        model.classify(text)
        times.append(time.perf_counter() - started)
    return percentiles_ms(times)


async def bench_unary(address: str, texts: list[str], callers: int, calls: int = UNARY_CALLS) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        requests = [classifier_pb2.ClassifyRequest(text=text) for text in texts]
        for request in requests[:WARM_UP]:
            await stub.Classify(request)
        times: list[float] = []
        per_caller = calls // callers

        async def caller(offset: int) -> None:
            for i in range(per_caller):
                request = requests[(offset + i) % len(requests)]
                started = time.perf_counter()
                await stub.Classify(request)
                times.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller(c * 37) for c in range(callers)))
        elapsed = time.perf_counter() - started
    return {**percentiles_ms(times), "calls_per_s": len(times) / elapsed, "callers": callers}


async def bench_health(address: str) -> dict[str, float]:
    """Reference: p50 of a grpc.health.v1 Check on the same server (the gRPC + asyncio cost with no model work)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        for _ in range(WARM_UP):
            await stub.Check(request)
        times = []
        for _ in range(UNARY_CALLS):
            started = time.perf_counter()
            await stub.Check(request)
            times.append(time.perf_counter() - started)
    return percentiles_ms(times)


def stream_requests(texts: list[str], items: int = STREAM_ITEMS) -> list[classifier_pb2.ClassifyStreamRequest]:
    return [
        classifier_pb2.ClassifyStreamRequest(request_id=str(i), text=texts[i % len(texts)]) for i in range(items)
    ]


def bench_stream_blocking(
    address: str, texts: list[str], items: int = STREAM_ITEMS, rounds: int = STREAM_ROUNDS
) -> dict[str, float]:
    """ClassifyStream from the blocking (sync) stub: gRPC's C core writes the requests from its own thread.

    `STREAM_ROUNDS` streams of `STREAM_ITEMS` requests one after the other; the figure is their median rate (the
    machine is shared: one round can land on a busy second).
    """
    requests = stream_requests(texts, items)
    rates = []
    with grpc.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        for _ in stub.ClassifyStream(iter(requests[:WARM_UP])):
            pass
        for _ in range(rounds):
            started = time.perf_counter()
            received = 0
            for response in stub.ClassifyStream(iter(requests)):
                assert response.request_id == requests[received].request_id  # in order
                received += 1
            assert received == len(requests)  # one response per request
            rates.append(received / (time.perf_counter() - started))
    return {
        "items_per_round": len(requests),
        "rounds_per_s": rates,
        "per_s": float(np.median(rates)),
        "client": "grpc blocking stub",
    }


async def bench_stream(address: str, texts: list[str]) -> dict[str, float]:
    """ClassifyStream from the asyncio stub (request writing shares the client's event loop)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        requests = stream_requests(texts)

        async def run(items: list[classifier_pb2.ClassifyStreamRequest]) -> tuple[int, float]:
            call = stub.ClassifyStream(iter(items))
            started = time.perf_counter()
            received = 0
            async for response in call:
                assert response.request_id == items[received].request_id  # in order
                received += 1
            return received, time.perf_counter() - started

        await run(requests[:WARM_UP])
        received, elapsed = await run(requests)
    return {"items": received, "seconds": elapsed, "per_s": received / elapsed}


def bench_setting(texts: list[str], name: str) -> dict[str, object]:
    """The artifact `SETTINGS[name]`: in process, gRPC unary (1 caller) and one stream, on `SETTING_CALLS` texts."""
    artifact_dir, sample = SETTINGS[name], texts[:SETTING_CALLS]
    in_process = bench_in_process(sample, artifact_dir, repeat=1)
    print(name, "in-process", in_process)
    with (
        tempfile.TemporaryDirectory() as folder,
        start_classifier(
            Path(folder) / "classifier.log", env={"QUANTMESH_CLASSIFIER_ARTIFACT_DIR": str(artifact_dir)}
        ) as process,
    ):
        unary_1 = asyncio.run(bench_unary(process.address, sample, 1, SETTING_CALLS))
        print(name, "grpc 1 caller", unary_1)
        stream = bench_stream_blocking(process.address, sample, SETTING_CALLS, 1)
        print(name, "stream (blocking stub)", stream)
    return {
        "artifact": str(artifact_dir.relative_to(DEFAULT_ARTIFACT_DIR.parents[2])),
        "in_process": in_process,
        "grpc_unary_1_caller": unary_1,
        "classify_stream_blocking_stub": stream,
    }


def main() -> None:
    load_before = os.getloadavg()
    texts = sample_texts()
    in_process = bench_in_process(texts)
    print("in-process", in_process)
    with (
        tempfile.TemporaryDirectory() as folder,
        start_classifier(Path(folder) / "classifier.log") as process,
    ):
        health = asyncio.run(bench_health(process.address))
        print("grpc health check", health)
        unary_1 = asyncio.run(bench_unary(process.address, texts, 1))
        print("grpc 1 caller", unary_1)
        unary_16 = asyncio.run(bench_unary(process.address, texts, 16))
        print("grpc 16 callers", unary_16)
        stream = bench_stream_blocking(process.address, texts)
        print("stream (blocking stub)", stream)
        stream_aio = asyncio.run(bench_stream(process.address, texts))
        print("stream (asyncio stub)", stream_aio)
    settings = {name: bench_setting(texts, name) for name in SETTINGS}
    figures = {
        "inprocess_p50_ms": round(in_process["p50_ms"], 4),
        "grpc_p50_ms": round(unary_1["p50_ms"], 4),
        "stream_per_s": round(stream["per_s"], 1),
    }
    for name, setting in settings.items():
        figures[f"{name}_inprocess_p50_ms"] = round(setting["in_process"]["p50_ms"], 4)
        figures[f"{name}_grpc_p50_ms"] = round(setting["grpc_unary_1_caller"]["p50_ms"], 4)
        figures[f"{name}_stream_per_s"] = round(setting["classify_stream_blocking_stub"]["per_s"], 1)
    details = {
        "texts": f"{SAMPLE_TEXTS} held-out test texts (GSM8K, MMLU, intent test split), fixed sample",
        "mean_text_chars": float(np.mean([len(t) for t in texts])),
        "in_process": in_process,
        "grpc_health_check_1_caller": health,
        "grpc_classify_vs_health_check_p50_ratio": unary_1["p50_ms"] / health["p50_ms"],
        "grpc_unary_1_caller": unary_1,
        "grpc_unary_16_callers": unary_16,
        "grpc_unary_16_vs_1_p50_ratio": unary_16["p50_ms"] / unary_1["p50_ms"],
        "classify_stream_blocking_stub": stream,
        "classify_stream_asyncio_stub": {**stream_aio, "client": "grpc.aio stub"},
        **settings,
        "targets": {"inprocess_p50_ms": "<= 1", "grpc_p50_ms": "<= 2", "stream_per_s": ">= 2000"},
        "note": "client and server share the machine's cores; the service runs as its own process",
        "load_average_1m_before_and_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    print(write_results("classifier", figures, details))
    print(figures)


if __name__ == "__main__":
    main()
