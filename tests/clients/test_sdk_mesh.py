"""The SDK against the real mesh (`mesh` fixture: Redis, Classifier, Router, two vLLM workers on tiny models)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from clients.messages import (
    ChatMessage,
    GenerationSummary,
    Pair,
    Requirements,
    RouteDecision,
    Sampling,
    TokenChunk,
)
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient
from core.errors import (
    AbortedError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    UnavailableError,
)
from core.vocabulary import (
    ChatRole,
    ComplexityTier,
    ProfileSource,
    Quantization,
    RejectionReason,
    RouteOutcome,
)
from tests.fixtures.router import start_router
from tests.fixtures.worker import worker_load
from tools.mesh.mesh import MeshEndpoints
from tools.mesh.processes import health_status

pytestmark = pytest.mark.vllm

GREEDY = Sampling(temperature=0.0)
PROMPT = "The capital of France is"


def _pairs(mesh: MeshEndpoints) -> set[Pair]:
    return {Pair(w.model_id, Quantization(w.quantization)) for w in mesh.workers}


def _wait_idle(mesh: MeshEndpoints, timeout_s: float = 10.0) -> None:
    """Every worker reports no running and no waiting request (nothing leaked)."""
    deadline = time.monotonic() + timeout_s
    while True:
        loads = [worker_load(w.address) for w in mesh.workers]
        if all(load.running_requests == 0 and load.waiting_requests == 0 for load in loads):
            return
        assert time.monotonic() < deadline, f"engine requests left over: {loads}"
        time.sleep(0.1)


def test_route_returns_a_typed_decision_over_every_pair(mesh: MeshEndpoints) -> None:
    with QuantmeshClient(mesh.router_address) as client:
        decision = client.route(PROMPT, Requirements(max_output_tokens=16, latency_budget_ms=5000),
                                request_id="sdk-route-1")
    assert isinstance(decision, RouteDecision)
    assert decision.request_id == "sdk-route-1"
    assert decision.outcome is RouteOutcome.ROUTED and decision.chosen in _pairs(mesh)
    assert {c.pair for c in decision.candidates} == _pairs(mesh)
    assert decision.candidates[0].pair == decision.chosen and decision.candidates[0].eligible
    assert decision.classification is not None and decision.classification.tier is not ComplexityTier.UNSPECIFIED
    assert not decision.classifier_degraded
    assert decision.profiles_version >= 1
    assert decision.effective_budget_ms == pytest.approx(5000, abs=1)


def test_sync_generate_streams_contiguous_chunks_and_a_summary(mesh: MeshEndpoints) -> None:
    with QuantmeshClient(mesh.router_address) as client:
        completion = client.complete(PROMPT, Requirements(max_output_tokens=24, latency_budget_ms=10_000),
                                     sampling=GREEDY)
    summary = completion.summary
    assert summary.served_by == completion.decision.chosen
    assert summary.usage.completion_tokens == len(completion.token_ids) > 0
    assert summary.usage.total_tokens == summary.usage.prompt_tokens + summary.usage.completion_tokens
    position = 0
    for chunk in completion.chunks:  # no token lost or duplicated
        assert chunk.first_token_index == position
        position += len(chunk.token_ids)
    assert completion.text.strip().startswith("Paris")  # the tiny models' golden answer
    assert 0 < summary.ttft_ms <= summary.e2e_latency_ms < 10_000
    assert summary.actual_cost_usd > 0 and summary.estimated_cost_usd > 0 and summary.attempts == 1


async def test_async_generate_yields_decision_chunks_then_summary(mesh: MeshEndpoints) -> None:
    conversation = [ChatMessage(ChatRole.SYSTEM, "Answer briefly."), ChatMessage(ChatRole.USER, PROMPT)]
    async with AsyncQuantmeshClient(mesh.router_address) as client:
        stream = client.generate(conversation, Requirements(max_output_tokens=16, latency_budget_ms=10_000),
                                 sampling=GREEDY, timeout_s=8.0)
        events = [event async for event in stream]
    assert isinstance(events[0], RouteDecision) and isinstance(events[-1], GenerationSummary)
    assert all(isinstance(e, TokenChunk) for e in events[1:-1]) and len(events) > 2
    # the explicit deadline (8 s) is smaller than the budget (10 s): the router applies it (as rebuilt from the
    # grpc-timeout header on the server's clock: a few ms either way, seen 8009)
    assert 7_000 < events[0].effective_budget_ms <= 8_050
    assert stream.summary is events[-1] and stream.text == "".join(e.text for e in events[1:-1])


def test_bad_input_raises_invalid_argument_naming_the_field(mesh: MeshEndpoints) -> None:
    with QuantmeshClient(mesh.router_address) as client:
        with pytest.raises(InvalidArgumentError, match=r"requirements\.max_output_tokens"):
            client.complete(PROMPT, Requirements(max_output_tokens=0, latency_budget_ms=5000))
        with pytest.raises(InvalidArgumentError, match=r"requirements\.required_accuracy"):
            client.route(PROMPT, Requirements(required_accuracy=1.5))
        with pytest.raises(InvalidArgumentError, match="prompt: must not be empty"):
            client.route("")


def test_a_budget_no_pair_can_meet(mesh: MeshEndpoints) -> None:
    impossible = Requirements(max_output_tokens=64, latency_budget_ms=20)
    with QuantmeshClient(mesh.router_address) as client:
        decision = client.route(PROMPT, impossible)
        assert decision.outcome is RouteOutcome.FALLBACK  # the most accurate healthy pair, flagged
        assert all(not c.eligible for c in decision.candidates)
        assert all(RejectionReason.LATENCY_BUDGET in {r.reason for r in c.rejections} for c in decision.candidates)
        most_accurate = max(decision.candidates, key=lambda c: c.expected_accuracy)
        assert decision.chosen == most_accurate.pair
        with pytest.raises(DeadlineExceededError):
            client.complete(PROMPT, impossible, sampling=GREEDY)
    _wait_idle(mesh)  # the worker aborted the request when the deadline passed


def test_admin_get_validate_and_publish(mesh: MeshEndpoints) -> None:
    with QuantmeshClient(mesh.router_address) as client:
        current = client.profiles.get()
        assert current.source is ProfileSource.REDIS and current.version >= 1
        document = json.loads(current.document_json)
        assert {(p["model_id"], p["endpoint"]) for p in document["pairs"]} == {
            (w.model_id, w.address) for w in mesh.workers}

        broken = json.loads(current.document_json)
        broken["pairs"][0]["accuracy_by_tier"]["hard"] = 1.7
        result = client.profiles.validate(json.dumps(broken))
        assert not result.valid and any(e.startswith("pairs.0.accuracy_by_tier.hard") for e in result.errors)
        with pytest.raises(InvalidArgumentError, match=r"pairs\.0\.accuracy_by_tier\.hard"):
            client.profiles.publish(json.dumps(broken))
        assert client.profiles.validate(current.document_json).valid

        with pytest.raises(AbortedError):
            client.profiles.publish(current.document_json, expected_version=current.version + 100)
        version = client.profiles.publish(current.document_json, expected_version=current.version)
        assert version == current.version + 1


def test_a_router_without_profiles_or_store_answers_with_typed_errors(mesh: MeshEndpoints, tmp_path: Path) -> None:
    with start_router(tmp_path / "router.log", classifier_address=mesh.classifier_address, wait=False) as router:
        deadline = time.monotonic() + 30
        while health_status(router.address) is None:
            assert time.monotonic() < deadline, router.service.log_tail()
            time.sleep(0.1)
        with QuantmeshClient(mesh.router_address) as good:
            valid_document = good.profiles.get().document_json
        with QuantmeshClient(router.address) as client:
            with pytest.raises(FailedPreconditionError, match="no profiles loaded"):
                client.route(PROMPT)
            with pytest.raises(FailedPreconditionError):
                client.profiles.get()
            with pytest.raises(UnavailableError, match="no profile store"):  # no Redis behind this router
                client.profiles.publish(valid_document)
