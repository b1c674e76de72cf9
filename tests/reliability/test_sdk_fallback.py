"""The SDK's static fallback (`clients.fallback`) on a real mesh: with the router killed, Generate calls are answered
by the fallback worker, flagged and counted, with one log line per outage; once the router is back they are routed
again. A router that dies after the first token is an error, never a second answer; and the caller's own errors
never fall back."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import pytest
from prometheus_client import REGISTRY

from clients.fallback import StaticFallback, applies
from clients.messages import Pair, Requirements
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient
from core.errors import InvalidArgumentError, QuantmeshError, UnavailableError
from core.vocabulary import Quantization, RouteOutcome
from tests.fixtures.reliability import LocalMesh
from tests.fixtures.waiting import await_until
from tests.reliability.meshes import synthetic_pair

FALLBACK_PAIR = Pair("syn-large", Quantization.NONE)
REQUIREMENTS = Requirements(max_output_tokens=6, latency_budget_ms=5000)
PROMPT = "Name three rivers."
WORDS = "lorem ipsum dolor sit amet consectetur "  # the synthetic engine's first six tokens


def fallback_count() -> float:
    return REGISTRY.get_sample_value("quantmesh_sdk_fallback_requests_total",
                                     {"model": "syn-large", "quantization": "none"}) or 0.0


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    async with LocalMesh(tmp_path_factory.mktemp("fallback-mesh"), synthetic_pair()) as running:
        yield running


def test_the_fallback_comes_from_a_file_or_the_environment(tmp_path) -> None:
    path = tmp_path / "fallback.json"
    path.write_text(json.dumps({"address": "10.0.0.7:50053", "model_id": "llama-8b", "quantization": "awq"}))
    expected = StaticFallback("10.0.0.7:50053", Pair("llama-8b", Quantization.AWQ))
    assert StaticFallback.from_file(path) == expected
    assert StaticFallback.from_environment({"QUANTMESH_SDK_FALLBACK_FILE": str(path)}) == expected
    assert StaticFallback.from_environment({"QUANTMESH_SDK_FALLBACK_ADDRESS": "10.0.0.7:50053",
                                            "QUANTMESH_SDK_FALLBACK_MODEL_ID": "llama-8b",
                                            "QUANTMESH_SDK_FALLBACK_QUANTIZATION": "awq"}) == expected
    assert StaticFallback.from_environment({}) is None
    with pytest.raises(ValueError, match="fallback needs model_id, quantization"):
        StaticFallback.from_environment({"QUANTMESH_SDK_FALLBACK_ADDRESS": "10.0.0.7:50053"})
    path.write_text(json.dumps({"address": "10.0.0.7:50053", "model_id": "m", "quantization": "int3"}))
    with pytest.raises(ValueError, match="fallback quantization 'int3' is not one of"):
        StaticFallback.from_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="fallback needs address, model_id, quantization"):
        StaticFallback.from_file(path)
    with pytest.raises(ValueError, match="expected host:port"):
        StaticFallback("no-port", expected.pair)


def test_only_unavailable_before_the_first_token_falls_back() -> None:
    assert applies(UnavailableError("router down"), tokens_received=0)
    assert not applies(UnavailableError("router down"), tokens_received=3)
    for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                 grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL):
        assert not applies(QuantmeshError("no", code=code), tokens_received=0), code


async def test_a_dead_router_is_answered_by_the_fallback_then_routed_again(mesh: LocalMesh, caplog) -> None:
    caplog.set_level(logging.INFO, logger="clients.fallback")
    fallback = StaticFallback(mesh.worker_addresses["syn-large"], FALLBACK_PAIR)
    async with AsyncQuantmeshClient(mesh.router_address, fallback=fallback) as client:
        routed = client.generate(PROMPT, REQUIREMENTS)
        completion = await routed.collect()
        assert not routed.served_by_fallback and completion.decision.outcome is RouteOutcome.ROUTED
        with pytest.raises(InvalidArgumentError):  # the caller's error: raised, not sent elsewhere
            await client.complete(PROMPT, Requirements(max_output_tokens=0, latency_budget_ms=5000))
        before = fallback_count()

        await mesh.kill_router()
        try:
            for _ in range(5):
                stream = client.generate(PROMPT, REQUIREMENTS)
                completion = await stream.collect()
                assert stream.served_by_fallback
                assert completion.text == WORDS and completion.summary.usage.completion_tokens == 6
                assert completion.decision.outcome is RouteOutcome.FALLBACK and completion.decision.candidates == ()
                assert "router unavailable" in completion.decision.reason
                assert completion.summary.served_by == FALLBACK_PAIR and completion.summary.actual_cost_usd == 0.0

            def sync_call() -> bool:  # the blocking client falls back the same way
                with QuantmeshClient(mesh.router_address, fallback=fallback) as sync_client:
                    stream = sync_client.generate(PROMPT, REQUIREMENTS)
                    return stream.collect().text == WORDS and stream.served_by_fallback
            assert await asyncio.to_thread(sync_call)
            assert fallback_count() - before == 6
        finally:
            await mesh.start_router()

        async def routed_again() -> bool:
            stream = client.generate(PROMPT, REQUIREMENTS)
            await stream.collect()
            return not stream.served_by_fallback
        assert await await_until(routed_again, timeout_s=15.0, interval_s=0.2)
    outage_lines = [r.getMessage() for r in caplog.records if r.name == "clients.fallback"]
    starts = [line for line in outage_lines if line.startswith("router unavailable")]
    # One line per client per outage: the async client's and the short-lived sync client's.
    assert len(starts) == 2, outage_lines
    assert sum(line.startswith("router answers again") for line in outage_lines) == 1, outage_lines


async def test_a_router_that_dies_after_the_first_token_is_an_error_not_a_second_answer(mesh: LocalMesh) -> None:
    fallback = StaticFallback(mesh.worker_addresses["syn-large"], FALLBACK_PAIR)
    before = fallback_count()
    async with AsyncQuantmeshClient(mesh.router_address, fallback=fallback) as client:
        stream = client.generate(PROMPT, Requirements(max_output_tokens=200, latency_budget_ms=10_000))
        try:
            with pytest.raises(UnavailableError):
                async for _ in stream.chunks():
                    if len(stream.received_chunks) == 2:
                        await mesh.kill_router()
            assert not stream.served_by_fallback and fallback_count() == before
            assert stream.text.startswith("lorem ipsum")
        finally:
            await mesh.start_router()
    assert await mesh.orphaned_engine_requests() == 0
