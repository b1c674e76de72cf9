"""Each service's `/metrics` after real requests through the mesh: counters and histograms move by exactly what the
requests did (the responses say which pair served, with which usage, cost and latency), and every bounded label
set is exported before any traffic."""

from __future__ import annotations

import threading

import grpc
import pytest

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.observability import (
    CLASSIFIER_MAX_TEXT_BYTES,
    FAST,
    SLOW,
    VLLM,
    ObservedMesh,
    generate,
    pair_of,
    scrape,
    tier_of,
    wait_for,
)
from tests.fixtures.worker import engine_executors, suspended, worker_load

pytestmark = pytest.mark.vllm

PROMPT = "Extract the city from: 'Ship the parcel to Lyon by Friday.'"
TIERS = ("simple", "complex", "hard")
MODES = ("interactive", "batch")
ATTEMPTS = 3  # of the gauge test: a run whose first chunk arrives after the engine finished is repeated


def _labels(pair) -> dict[str, str]:
    return {"model": pair.model, "quantization": pair.quantization}


def test_every_bounded_label_set_is_exported_before_traffic(observed_mesh: ObservedMesh) -> None:
    router = scrape(observed_mesh.router.metrics_port)
    for pair in (FAST, SLOW):
        for tier in TIERS:
            for mode in MODES:
                for outcome in ("routed", "fallback"):
                    assert router.has("quantmesh_router_decisions_total", **_labels(pair), tier=tier, mode=mode,
                                      outcome=outcome)
                assert router.has("quantmesh_router_decisions_total", model="none", quantization="none", tier=tier,
                                  mode=mode, outcome="rejected")
        for kind in ("estimated", "actual"):
            assert router.has("quantmesh_router_cost_usd_total", **_labels(pair), kind=kind)
        for code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
            assert router.has("quantmesh_router_retries_total", **_labels(pair), code=code)
        assert router.value("quantmesh_router_circuit_state", **_labels(pair)) == 0  # closed
    assert router.value("quantmesh_router_profile_version") == observed_mesh.profiles["version"]
    assert router.value("quantmesh_router_profile_age_seconds") > 0
    assert router.types["quantmesh_router_decisions"] == "counter"
    assert router.types["quantmesh_router_latency_budget_ratio"] == "histogram"

    classifier = scrape(observed_mesh.classifier.metrics_port)
    tiers = {labels["tier"] for labels in classifier.label_sets("quantmesh_classifier_classifications_total")}
    intents = {labels["intent"] for labels in classifier.label_sets("quantmesh_classifier_classifications_total")}
    assert tiers == set(TIERS) and len(intents) == 10

    worker = scrape(observed_mesh.workers[VLLM].metrics_port)
    for reason in ("cancelled", "deadline", "error"):
        assert worker.has("quantmesh_worker_aborts_total", **_labels(VLLM), reason=reason)
    for gauge in ("running_requests", "waiting_requests", "kv_cache_usage_ratio"):
        assert worker.has(f"quantmesh_worker_{gauge}", **_labels(VLLM))


def test_router_and_classifier_count_what_the_requests_did(observed_mesh: ObservedMesh) -> None:
    router_before = scrape(observed_mesh.router.metrics_port)
    classifier_before = scrape(observed_mesh.classifier.metrics_port)
    results = [generate(observed_mesh.router.address, PROMPT, max_output_tokens=6) for _ in range(3)]
    router = scrape(observed_mesh.router.metrics_port)
    classifier = scrape(observed_mesh.classifier.metrics_port)

    def moved(name: str, **labels: str) -> float:
        return router.value(name, **labels) - router_before.value(name, **labels)

    served = {pair_of(result.summary.served_by) for result in results}
    assert len(served) == 1, served  # same prompt, same load: the same pair
    pair = served.pop()
    tier = tier_of(results[0].decision.classification)
    assert moved("quantmesh_router_decisions_total", **_labels(pair), tier=tier, mode="interactive",
                 outcome="routed") == 3
    assert moved("quantmesh_router_decisions_total") == 3
    assert moved("quantmesh_router_e2e_latency_seconds_count", **_labels(pair)) == 3
    assert moved("quantmesh_router_e2e_latency_seconds_sum", **_labels(pair)) == pytest.approx(
        sum(r.summary.e2e_latency_ms for r in results) / 1000.0, rel=1e-9)
    assert moved("quantmesh_router_ttft_seconds_count", **_labels(pair)) == 3
    assert 0 < moved("quantmesh_router_ttft_seconds_sum", **_labels(pair)) < moved(
        "quantmesh_router_e2e_latency_seconds_sum", **_labels(pair))
    assert moved("quantmesh_router_cost_usd_total", **_labels(pair), kind="actual") == pytest.approx(
        sum(r.summary.actual_cost_usd for r in results), rel=1e-9)
    assert moved("quantmesh_router_cost_usd_total", **_labels(pair), kind="estimated") == pytest.approx(
        sum(r.summary.estimated_cost_usd for r in results), rel=1e-9)
    ratio_sum = sum(r.summary.e2e_latency_ms / r.decision.effective_budget_ms for r in results)
    assert moved("quantmesh_router_latency_budget_ratio_count", **_labels(pair), mode="interactive") == 3
    assert moved("quantmesh_router_latency_budget_ratio_sum", **_labels(pair), mode="interactive") == pytest.approx(
        ratio_sum, rel=1e-6)
    assert moved("quantmesh_router_budget_misses_total") == 0
    assert moved("quantmesh_router_classifier_degraded_total") == 0

    intent = common_pb2.TaskIntent.Name(results[0].decision.classification.intent).removeprefix("TASK_INTENT_").lower()
    assert classifier.value("quantmesh_classifier_classifications_total", tier=tier, intent=intent) - \
        classifier_before.value("quantmesh_classifier_classifications_total", tier=tier, intent=intent) == 3
    assert classifier.value("quantmesh_classifier_latency_seconds_count") - \
        classifier_before.value("quantmesh_classifier_latency_seconds_count") == 3
    assert classifier.value("quantmesh_classifier_latency_seconds_bucket", le="0.1") - \
        classifier_before.value("quantmesh_classifier_latency_seconds_bucket", le="0.1") == 3


def test_degraded_classification_and_rejection_are_counted(observed_mesh: ObservedMesh) -> None:
    """A prompt over the classifier's size limit is classified by the router's degraded rules; one over every pair's
    context length is rejected (INVALID_ARGUMENT) and counted with model and quantization "none"."""
    before = scrape(observed_mesh.router.metrics_port)
    served = generate(observed_mesh.router.address, "word " * (CLASSIFIER_MAX_TEXT_BYTES // 4), max_output_tokens=4)
    assert served.decision.classifier_degraded
    with pytest.raises(grpc.RpcError) as rejected:
        generate(observed_mesh.router.address, "word " * 6000, max_output_tokens=4)
    assert rejected.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(observed_mesh.router.metrics_port)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("quantmesh_router_classifier_degraded_total") == 2
    assert moved("quantmesh_router_decisions_total", model="none", quantization="none", outcome="rejected",
                 mode="interactive") == 1
    assert moved("quantmesh_router_decisions_total", **_labels(pair_of(served.summary.served_by)),
                 tier=tier_of(served.decision.classification), outcome="routed") == 1


def test_a_refused_pair_is_retried_and_counted_as_a_failover(observed_mesh: ObservedMesh) -> None:
    """SLOW is the router's first choice (its profile says so), but with a long stream in flight its worker's
    admission control refuses (RESOURCE_EXHAUSTED) a request it cannot finish in time: the router retries on FAST."""
    slow = observed_mesh.workers[SLOW]
    router_before = scrape(observed_mesh.router.metrics_port)
    worker_before = scrape(slow.metrics_port)
    with grpc.insecure_channel(slow.address) as channel:
        background = worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(
            worker_pb2.GenerateRequest(prompt="background", max_output_tokens=400))
        stream = iter(background)
        for _ in range(5):  # the worker has measured its inter-token latency
            next(stream)
        result = generate(observed_mesh.router.address, PROMPT, max_output_tokens=60, budget_ms=1500)
        background.cancel()
    assert pair_of(result.decision.chosen) == SLOW
    assert pair_of(result.summary.served_by) == FAST
    assert result.summary.attempts == 2
    router = scrape(observed_mesh.router.metrics_port)
    assert router.value("quantmesh_router_retries_total", **_labels(SLOW), code="RESOURCE_EXHAUSTED") - \
        router_before.value("quantmesh_router_retries_total", **_labels(SLOW), code="RESOURCE_EXHAUSTED") == 1
    assert router.value("quantmesh_router_failovers_total", **_labels(SLOW)) - \
        router_before.value("quantmesh_router_failovers_total", **_labels(SLOW)) == 1
    assert router.value("quantmesh_router_e2e_latency_seconds_count", **_labels(FAST)) - \
        router_before.value("quantmesh_router_e2e_latency_seconds_count", **_labels(FAST)) == 1
    # The cancelled background stream is an abort on the worker.
    wait_for(lambda: scrape(slow.metrics_port).value("quantmesh_worker_aborts_total", reason="cancelled") -
             worker_before.value("quantmesh_worker_aborts_total", reason="cancelled") == 1)


def test_a_request_out_of_budget_is_a_miss_and_a_deadline_abort(observed_mesh: ObservedMesh) -> None:
    slow = observed_mesh.workers[SLOW]
    router_before = scrape(observed_mesh.router.metrics_port)
    worker_before = scrape(slow.metrics_port)
    with pytest.raises(grpc.RpcError) as late:
        generate(observed_mesh.router.address, PROMPT, max_output_tokens=40, budget_ms=400)
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    router = scrape(observed_mesh.router.metrics_port)
    labels = {**_labels(SLOW), "mode": "interactive"}
    assert router.value("quantmesh_router_budget_misses_total", **labels) - \
        router_before.value("quantmesh_router_budget_misses_total", **labels) == 1
    assert router.value("quantmesh_router_latency_budget_ratio_bucket", **labels, le="1.0") == \
        router_before.value("quantmesh_router_latency_budget_ratio_bucket", **labels, le="1.0")
    assert router.value("quantmesh_router_latency_budget_ratio_bucket", **labels, le="1.05") - \
        router_before.value("quantmesh_router_latency_budget_ratio_bucket", **labels, le="1.05") == 1
    wait_for(lambda: scrape(slow.metrics_port).value("quantmesh_worker_aborts_total", reason="deadline") -
             worker_before.value("quantmesh_worker_aborts_total", reason="deadline") == 1)


def _worker_generate(address: str, prompt: str, max_output_tokens: int) -> list[worker_pb2.GenerateResponse]:
    with grpc.insecure_channel(address) as channel:
        return list(worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(
            worker_pb2.GenerateRequest(prompt=prompt, max_output_tokens=max_output_tokens,
                                       sampling=common_pb2.SamplingParams(temperature=0.0)), timeout=60.0))


def test_vllm_worker_counts_tokens_latencies_and_aborts(observed_mesh: ObservedMesh) -> None:
    worker = observed_mesh.workers[VLLM]
    labels = _labels(VLLM)
    before = scrape(worker.metrics_port)
    runs = [_worker_generate(worker.address, prompt, 12) for prompt in ("The capital of France is", "1 + 1 =")]
    after = scrape(worker.metrics_port)

    def moved(name: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    completes = [run[-1].complete for run in runs]
    deltas = [sum(1 for response in run if response.HasField("chunk")) for run in runs]
    assert moved("quantmesh_worker_prompt_tokens_total") == sum(c.usage.prompt_tokens for c in completes)
    assert moved("quantmesh_worker_generation_tokens_total") == sum(c.usage.completion_tokens for c in completes)
    assert moved("quantmesh_worker_ttft_seconds_count") == 2
    assert moved("quantmesh_worker_ttft_seconds_sum") == pytest.approx(sum(c.ttft_ms for c in completes) / 1000.0,
                                                                       rel=1e-6)
    assert moved("quantmesh_worker_e2e_latency_seconds_count") == 2
    assert moved("quantmesh_worker_e2e_latency_seconds_sum") == pytest.approx(
        sum(c.e2e_latency_ms for c in completes) / 1000.0, rel=1e-6)
    assert moved("quantmesh_worker_itl_seconds_count") == sum(d - 1 for d in deltas)
    assert moved("quantmesh_worker_aborts_total") == 0
    # Idle again: the engine's own load snapshot says nothing runs, nothing waits, no KV-cache block is held.
    wait_for(lambda: scrape(worker.metrics_port).value("quantmesh_worker_running_requests", **labels) == 0)
    idle = scrape(worker.metrics_port)
    assert idle.value("quantmesh_worker_waiting_requests", **labels) == 0
    assert idle.value("quantmesh_worker_kv_cache_usage_ratio", **labels) == 0


def test_vllm_worker_gauges_follow_a_running_request_and_its_cancellation(observed_mesh: ObservedMesh) -> None:
    worker = observed_mesh.workers[VLLM]
    labels = _labels(VLLM)
    before = scrape(worker.metrics_port)
    executors = engine_executors(worker.address)
    # Greedy decoding of this prompt runs to max_output_tokens on the tiny model (no end-of-sequence).
    request = worker_pb2.GenerateRequest(prompt="The capital of Peru is", max_output_tokens=2000,
                                         sampling=common_pb2.SamplingParams(temperature=0.0))
    for _ in range(ATTEMPTS):
        with grpc.insecure_channel(worker.address) as channel:
            call = worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(request, timeout=60.0)
            next(call)
            # The engine is stopped at the first token, seconds of tokens before the end: the gauge is read while
            # the request is still running.
            with suspended(executors):
                if worker_load(worker.address).running_requests == 1:
                    snapshot = wait_for(lambda: (s := scrape(worker.metrics_port)).value(
                        "quantmesh_worker_running_requests", **labels) == 1 and s, timeout_s=5.0)
                    call.cancel()
                    break
            # The engine had already finished (this process got no CPU meanwhile; see ServiceProcess.start for the
            # cause, fixed since): drain the stream and try again.
            assert list(call)[-1].HasField("complete")
    else:
        pytest.fail(f"the engine had finished at the first chunk in all {ATTEMPTS} attempts")
    assert 0 < snapshot.value("quantmesh_worker_kv_cache_usage_ratio", **labels) <= 1
    wait_for(lambda: scrape(worker.metrics_port).value("quantmesh_worker_aborts_total", **labels, reason="cancelled")
             - before.value("quantmesh_worker_aborts_total", **labels, reason="cancelled") == 1)
    wait_for(lambda: scrape(worker.metrics_port).value("quantmesh_worker_running_requests", **labels) == 0)


def test_concurrent_requests_are_all_counted(observed_mesh: ObservedMesh) -> None:
    """Eight streams at once through the router: the counters are exact under concurrency."""
    before = scrape(observed_mesh.router.metrics_port)
    results = []
    threads = [threading.Thread(target=lambda: results.append(generate(observed_mesh.router.address, PROMPT,
                                                                       max_output_tokens=4))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = scrape(observed_mesh.router.metrics_port)
    assert len(results) == 8
    assert after.value("quantmesh_router_decisions_total") - before.value("quantmesh_router_decisions_total") == 8
    assert after.value("quantmesh_router_cost_usd_total", kind="actual") - before.value(
        "quantmesh_router_cost_usd_total", kind="actual") == pytest.approx(
        sum(r.summary.actual_cost_usd for r in results), rel=1e-9)
