"""End to end on real vLLM: profile two tiny-model workers, check every figure is measured and consistent with the
run's own timings and the models' own tokenizers, and that `--publish` changes the router's decisions.

Two engines (tiny-s/none and tiny-m/none) are started for the module; the runs are kept small (6 eval items, two
concurrency levels, 4 requests each, 16 output tokens) because the machine's 2 cores are shared.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tokenizers import Tokenizer

from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from core.profiles import derived_cost_per_1m_tokens_usd, parse_profile_document
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from services.router.profile_store import ProfileStore, connect
from tests.fixtures.profiler import tiny_eval_lines
from tests.router.helpers import document, pair_dict
from tools.mesh.launch import WorkerProcess
from tools.profiler.cli import EXIT_OK, main
from tools.profiler.derived import recommended_max_model_len
from tools.profiler.eval_set import load_eval_set

pytestmark = pytest.mark.vllm

PAIRS = {"tiny-s": ("s", "none"), "tiny-m": ("m", "none")}  # distinct model_ids: two pairs
PRICES = {"tiny-s": 0.5, "tiny-m": 2.0}
LOAD_OUTPUT_TOKENS = 16


@pytest.fixture(scope="module")
def workers(worker_factory, tiny_model_dirs) -> Iterator[dict[str, WorkerProcess]]:
    started = {name: worker_factory(tiny_model_dirs[size], served_model_name=name, quantization=quantization,
                                    wait=False)
               for name, (size, quantization) in PAIRS.items()}
    try:
        for worker in started.values():
            worker.service.wait_until_serving(300.0)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "tiny-eval.jsonl"
    path.write_text("\n".join(tiny_eval_lines(per_kind=2)) + "\n")
    return path


def profile_args(workers: dict[str, WorkerProcess], eval_file: Path, output: Path, tokenizer: Path,
                 *extra: str) -> list[str]:
    argv = []
    for worker in workers.values():
        argv += ["--worker", worker.address]
    return [*argv, "--eval", str(eval_file), "--price-per-hour-usd",
            *(str(PRICES[name]) for name in workers), "--output", str(output), "--reference-tokenizer",
            str(tokenizer), "--concurrency", "1,2", "--requests-per-level", "4", "--load-output-tokens",
            str(LOAD_OUTPUT_TOKENS), "--accuracy-concurrency", "2", "--no-progress", *extra]


@pytest.fixture(scope="module")
def profiled(workers, eval_file, reference_tokenizer_path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("profiles") / "profiles.json"
    assert main(profile_args(workers, eval_file, output, reference_tokenizer_path)) == EXIT_OK
    return output


def test_every_field_is_measured_and_accepted_by_the_router_schema(profiled, workers) -> None:
    profiles = parse_profile_document(profiled.read_text())  # the router's own validation
    report = {entry["profile"]["model_id"]: entry for entry in json.loads(
        profiled.with_suffix(".report.json").read_text())["pairs"]}
    assert [(p.model_id, p.quantization.value, p.endpoint) for p in profiles.pairs] == [
        (name, PAIRS[name][1], workers[name].address) for name in PAIRS]
    for pair in profiles.pairs:
        entry = report[pair.model_id]
        levels = {level["concurrency"]: level for level in entry["levels"]}
        unloaded = levels[1]
        assert 0 < pair.ttft_p50_ms <= pair.ttft_p99_ms
        assert pair.ttft_p50_ms <= unloaded["e2e_latency_ms"]["p50"]
        assert pair.itl_p50_ms == unloaded["tpot_ms"]["p50"]
        assert 0 < pair.itl_p50_ms < unloaded["e2e_latency_ms"]["p50"]
        # e2e >= TTFT + (tokens - 1) x TPOT for the median request, within the spread of the sample.
        assert unloaded["e2e_latency_ms"]["p99"] >= unloaded["ttft_ms"]["p50"] + (
            LOAD_OUTPUT_TOKENS - 1) * unloaded["tpot_ms"]["p50"] * 0.5
        for level in levels.values():
            assert level["requests"] % level["concurrency"] == 0 and level["requests"] >= 4
            # Tokens/s is at most what the requests' own timings allow: all tokens in the level's wall time.
            assert level["output_tokens_per_s"] <= level["requests"] * LOAD_OUTPUT_TOKENS / level["wall_s"] * 1.001
            assert level["requests_per_s"] == pytest.approx(level["requests"] / level["wall_s"])
        assert pair.throughput_tokens_per_s == max(level["output_tokens_per_s"] for level in levels.values())
        assert pair.cost_per_1m_tokens_usd == pytest.approx(
            derived_cost_per_1m_tokens_usd(PRICES[pair.model_id], pair.throughput_tokens_per_s))
        assert pair.max_model_len == 512  # the worker's own (tests.fixtures.worker default)
        assert entry["worker"]["kv_cache_capacity_tokens"] > 0
        assert entry["worker"]["memory_used_bytes"] > 0 and pair.gpu_memory_gib > 0
        assert set(pair.accuracy_by_intent) == {"question_answering", "extraction", "math"}
        assert pair.accuracy_by_tier.simple >= 0.5  # "The capital of France is" -> " Paris" is a golden prompt
        assert entry["items"][0]["output"].strip() == "Paris" and entry["items"][0]["correct"]
        assert (pair.measured_at.timestamp() <= time.time())


def test_tokenization_ratio_and_max_model_len_follow_the_models_tokenizers(
        profiled, workers, eval_file, reference_tokenizer_path) -> None:
    profiles = {pair.model_id: pair for pair in parse_profile_document(profiled.read_text()).pairs}
    report = {entry["profile"]["model_id"]: entry for entry in json.loads(
        profiled.with_suffix(".report.json").read_text())["pairs"]}
    items = load_eval_set(eval_file)
    reference = ReferenceTokenizer(reference_tokenizer_path)
    reference_total = sum(reference.count_tokens(item.prompt) for item in items)
    for name, worker in workers.items():
        # Independently: the model dir's own tokenizer, with the BOS token its post-processor adds to raw prompts.
        model_tokenizer = Tokenizer.from_file(str(worker.model_dir / "tokenizer.json"))
        model_counts = [len(model_tokenizer.encode(item.prompt).ids) for item in items]
        assert profiles[name].tokenization_ratio == pytest.approx(sum(model_counts) / reference_total)
        assert [entry["prompt_tokens"] for entry in report[name]["items"]] == model_counts
        assert report[name]["recommended_max_model_len"] == recommended_max_model_len(
            [count + item.max_output_tokens for count, item in zip(model_counts, items, strict=True)])


async def _route(address: str) -> router_pb2.RouteDecision:
    async with grpc.aio.insecure_channel(address) as channel:
        request = router_pb2.RouteRequest(prompt="The capital of France is", requirements=router_pb2.RoutingRequirements(
            max_output_tokens=8, latency_budget_ms=30_000))
        return (await router_pb2_grpc.RouterServiceStub(channel).Route(request, timeout=5)).decision


async def _route_when_healthy(address: str, timeout_s: float = 20.0) -> router_pb2.RouteDecision:
    deadline = time.monotonic() + timeout_s
    while True:
        decision = await _route(address)
        unhealthy = [c for c in decision.candidates
                     if router_pb2.REJECTION_REASON_UNHEALTHY in [r.reason for r in c.rejections]]
        if not unhealthy:
            return decision
        assert time.monotonic() < deadline, f"workers not healthy for the router: {decision}"
        await asyncio.sleep(0.2)


def test_publish_changes_the_routers_decisions(workers, eval_file, reference_tokenizer_path, redis_server,
                                               router_factory, tmp_path) -> None:
    # Before: hand-written profiles claiming both pairs take 1000 s to the first token: nothing fits a 30 s budget.
    prefix = f"test:{uuid.uuid4().hex}"
    stale = document(*(pair_dict(name, workers[name].address, quantization=PAIRS[name][1], ttft_p50_ms=1e6,
                                 ttft_p99_ms=2e6, max_model_len=512) for name in PAIRS))
    asyncio.run(ProfileStore(connect(redis_server.url), prefix).publish(stale))
    router = router_factory(redis_url=redis_server.url, profiles_prefix=prefix)
    before = asyncio.run(_route_when_healthy(router.address))
    assert before.outcome == router_pb2.ROUTE_OUTCOME_FALLBACK
    assert all(router_pb2.REJECTION_REASON_LATENCY_BUDGET in [r.reason for r in c.rejections]
               for c in before.candidates)

    output = tmp_path / "profiles.json"
    assert main(profile_args(workers, eval_file, output, reference_tokenizer_path,
                             "--publish", router.address)) == EXIT_OK
    published = {pair.model_id: pair for pair in parse_profile_document(output.read_text()).pairs}

    deadline = time.monotonic() + 10.0
    while (after := asyncio.run(_route_when_healthy(router.address))).profiles_version == before.profiles_version:
        assert time.monotonic() < deadline, "the router did not swap the published profiles in"
        time.sleep(0.1)
    assert after.profiles_version == before.profiles_version + 1
    assert after.outcome == router_pb2.ROUTE_OUTCOME_ROUTED
    for candidate in after.candidates:
        pair = published[candidate.pair.model_id]
        assert not [r for r in candidate.rejections if r.reason == router_pb2.REJECTION_REASON_LATENCY_BUDGET]
        assert candidate.predicted_ttft_ms >= pair.ttft_p50_ms  # the measured TTFT, plus any live queue
        assert candidate.predicted_ttft_ms < 1e6
