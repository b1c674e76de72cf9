"""The gateway through OpenAI's own Python SDK, against a running mesh (router with caller auth, classifier, two
synthetic workers, all real processes; `tests.fixtures.gateway`).

Covers: model listing and pinning, routed and pinned completions streamed and not, usage equal to what the worker
itself reports for the same conversation, routing requirements from the body and from `x-quantmesh-*` headers,
every error status raised as the SDK's matching exception (401, 403, 400, 404, 429 with Retry-After, 503, 504, and
an error event after a 200), and the chat page's HTML.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import httpx
import openai
import pytest

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.gateway import ADMIN_ONLY_KEY, GatewayMesh
from tests.fixtures.waiting import await_until
from tests.reliability.meshes import SYNTHETIC_TOKENS_PER_S

USER = [{"role": "user", "content": "Name three primary colours."}]
PAIRS = ["syn-small/none", "syn-large/none"]


def test_models_lists_auto_and_every_pair(gateway_mesh: GatewayMesh) -> None:
    models = gateway_mesh.openai().models.list().data
    assert [model.id for model in models] == ["auto", *PAIRS]
    for model in models[1:]:
        assert model.model_extra["quantmesh"]["serving"] is True
        assert model.model_extra["quantmesh"]["max_model_len"] == 512


def test_completion_reports_the_decision_in_headers_and_body(gateway_mesh: GatewayMesh) -> None:
    raw = gateway_mesh.openai().chat.completions.with_raw_response.create(model="auto", messages=USER)
    completion = raw.parse()
    extension = completion.model_extra["quantmesh"]
    # The cheapest default with no accuracy floor: the cheaper pair.
    assert raw.headers["x-quantmesh-pair"] == completion.model == "syn-small/none"
    assert extension["decision"]["outcome"] == "routed" and extension["decision"]["pair"] == "syn-small/none"
    assert {candidate["pair"] for candidate in extension["decision"]["candidates"]} == set(PAIRS)
    assert extension["summary"]["served_by"] == raw.headers["x-quantmesh-served-by"] == "syn-small/none"
    assert float(raw.headers["x-quantmesh-ttft-ms"]) == pytest.approx(extension["summary"]["ttft_ms"], abs=0.1)
    assert float(raw.headers["x-quantmesh-cost-usd"]) > 0
    assert raw.headers["x-quantmesh-request-id"] == extension["decision"]["request_id"]
    # The gateway's default of 4 tokens: four synthetic words, cut by length.
    assert completion.usage.completion_tokens == 4
    assert completion.choices[0].message.content == "lorem ipsum dolor sit "
    assert completion.choices[0].finish_reason == "length"


async def _worker_usage(address: str, text: str, max_tokens: int) -> tuple[str, int, int]:
    """What the worker itself answers for the same conversation: (text, prompt tokens, completion tokens)."""
    request = worker_pb2.GenerateRequest(request_id="direct", max_output_tokens=max_tokens, chat=common_pb2.Conversation(
        messages=[common_pb2.ChatMessage(role=common_pb2.CHAT_ROLE_USER, content=text)]))
    async with grpc.aio.insecure_channel(address) as channel:
        parts, usage = [], None
        async for response in worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(request, timeout=10):
            if response.HasField("chunk"):
                parts.append(response.chunk.text)
            else:
                usage = response.complete.usage
    assert usage is not None
    return "".join(parts), usage.prompt_tokens, usage.completion_tokens


async def test_streamed_usage_matches_the_worker(gateway_mesh: GatewayMesh) -> None:
    for pair in PAIRS:
        stream = await gateway_mesh.async_openai().chat.completions.create(
            model=pair, messages=USER, max_tokens=9, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        first, last = chunks[0].model_extra["quantmesh"], chunks[-1]
        assert first["decision"]["pair"] == pair and len(first["decision"]["candidates"]) == 1  # pinned: alone
        assert last.choices == [] and last.model_extra["quantmesh"]["summary"]["served_by"] == pair
        assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "length"
        worker = gateway_mesh.mesh.worker_addresses[pair.split("/")[0]]
        assert (text, last.usage.prompt_tokens, last.usage.completion_tokens) == await _worker_usage(
            worker, USER[0]["content"], 9)


def test_requirements_come_from_the_body_or_the_headers(gateway_mesh: GatewayMesh) -> None:
    client = gateway_mesh.openai()
    # Only syn-large reaches 0.9 on the simple and complex tiers, and is the most accurate fallback on hard.
    by_body = client.chat.completions.create(model="auto", messages=USER, extra_body={"min_accuracy": 0.9})
    by_header = client.chat.completions.create(model="auto", messages=USER,
                                               extra_headers={"x-quantmesh-min-accuracy": "0.9"})
    assert by_body.model == by_header.model == "syn-large/none"
    budget = client.chat.completions.with_raw_response.create(
        model="auto", messages=USER, extra_headers={"x-quantmesh-latency-budget-ms": "2500"}).parse()
    assert budget.model_extra["quantmesh"]["decision"]["effective_budget_ms"] <= 2500
    with pytest.raises(openai.BadRequestError, match="mode: unknown value 'fastest'"):
        client.chat.completions.create(model="auto", messages=USER, extra_headers={"x-quantmesh-mode": "fastest"})


def test_credentials_map_to_401_and_403(gateway_mesh: GatewayMesh) -> None:
    with pytest.raises(openai.AuthenticationError) as unknown:
        gateway_mesh.openai(api_key="not-a-key-of-this-mesh").chat.completions.create(model="auto", messages=USER)
    assert unknown.value.status_code == 401 and unknown.value.body["type"] == "authentication_error"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        gateway_mesh.openai(api_key=ADMIN_ONLY_KEY).chat.completions.create(model="auto", messages=USER)
    assert denied.value.status_code == 403
    with pytest.raises(openai.PermissionDeniedError):
        gateway_mesh.openai(api_key=ADMIN_ONLY_KEY).models.list()


def test_bad_request_and_unknown_model_are_400_and_404(gateway_mesh: GatewayMesh) -> None:
    client = gateway_mesh.openai()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="auto", messages=USER, temperature=3.5)
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError, match="syn-small/none, syn-large/none"):
        client.chat.completions.create(model="syn-medium/none", messages=USER)
    with pytest.raises(openai.NotFoundError, match="not a pair id"):
        client.chat.completions.create(model="gpt-4o", messages=USER)


def test_a_budget_the_stream_cannot_meet_is_504(gateway_mesh: GatewayMesh) -> None:
    client = gateway_mesh.openai()
    slow = {"model": "syn-small/none", "messages": USER, "max_tokens": 100, "extra_body": {"latency_budget_ms": 400}}
    assert 100 / SYNTHETIC_TOKENS_PER_S > 1.0  # the 100 tokens take 2 s, five times the budget
    with pytest.raises(openai.InternalServerError) as timeout:
        client.chat.completions.create(**slow)
    assert timeout.value.status_code == 504 and timeout.value.body["type"] == "timeout"
    # Streamed, the 200 and some tokens are out first: the failure is an error event, raised by the SDK.
    received: list[str] = []
    with pytest.raises(openai.APIError, match="did not finish within the budget"):
        for chunk in client.chat.completions.create(stream=True, **slow):
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(received).startswith("lorem ipsum")


async def test_overload_is_429_with_retry_after(gateway_mesh: GatewayMesh) -> None:
    client = gateway_mesh.async_openai()
    # Eight long streams on syn-small: its predicted latency under that load misses 700 ms, while idle it meets it.
    background = [asyncio.create_task(client.chat.completions.create(
        model="syn-small/none", messages=USER, max_tokens=150, extra_body={"latency_budget_ms": 10_000}))
        for _ in range(8)]
    try:
        async def loaded() -> bool:
            load = await gateway_mesh.mesh.worker_load("syn-small")
            return load.running_requests >= 8
        assert await await_until(loaded, timeout_s=10.0)
        await asyncio.sleep(0.3)  # the router's load stream reports every 100 ms
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="syn-small/none", messages=USER, max_tokens=16,
                                                 extra_body={"latency_budget_ms": 700})
        retry_after = refused.value.response.headers
        assert int(retry_after["retry-after"]) >= 1 and int(retry_after["retry-after-ms"]) >= 1
        assert "overloaded" in refused.value.message
    finally:
        for task in background:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*background, return_exceptions=True)
    assert await gateway_mesh.mesh.orphaned_engine_requests() == 0


async def test_a_pinned_pair_whose_worker_is_down_is_503(gateway_mesh: GatewayMesh) -> None:
    mesh, client = gateway_mesh.mesh, gateway_mesh.async_openai()
    await mesh.kill_worker("syn-large")
    try:
        async def reported_down() -> bool:
            listed = await client.models.list()
            return any(m.id == "syn-large/none" and not m.model_extra["quantmesh"]["serving"] for m in listed.data)
        assert await await_until(reported_down, timeout_s=15.0)
        with pytest.raises(openai.InternalServerError) as unavailable:
            await client.chat.completions.create(model="syn-large/none", messages=USER)
        assert unavailable.value.status_code == 503 and unavailable.value.body["type"] == "service_unavailable"
        # Routed traffic still gets an answer from the pair that is up.
        assert (await client.chat.completions.create(model="auto", messages=USER)).model == "syn-small/none"
    finally:
        await mesh.start_worker("syn-large")


def test_health_readiness_metrics_and_the_chat_page(gateway_mesh: GatewayMesh) -> None:
    url = gateway_mesh.url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "router": "SERVING"}
    metrics = httpx.get(f"{url}/metrics").text
    assert 'quantmesh_gateway_http_requests_total{handler="/v1/chat/completions",method="POST",status="200"}' in metrics
    assert "quantmesh_gateway_active_streams" in metrics
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="prompt"' in page.text and "/v1/chat/completions" in page.text
    schema = httpx.get(f"{url}/openapi.json").json()
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "messages" in body["required"] and "ChatMessage" in schema["components"]["schemas"]
