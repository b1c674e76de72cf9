"""Bad input at the gateway gets a 4xx in OpenAI's error format, and the mesh keeps serving; a client that leaves
mid-answer leaves no engine request running.

Each case is a raw HTTP request (httpx), since the SDK would refuse most of them before sending. A hypothesis
fuzz test then sends mutated and random bodies and finds no 5xx.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.gateway import ROUTE_KEY, GatewayMesh

AUTH = {"authorization": f"Bearer {ROUTE_KEY}"}
VALID = {"model": "auto", "messages": [{"role": "user", "content": "Say hello."}]}


def post(gateway_mesh: GatewayMesh, body: bytes | str, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway_mesh.url}/v1/chat/completions", content=body, timeout=30,
                      headers={"content-type": "application/json", **AUTH, **headers})


def test_bad_bodies_are_4xx_with_an_openai_error(gateway_mesh: GatewayMesh) -> None:
    cases = {
        "malformed JSON": ('{"model": "auto", "messages": [', 400, "not valid JSON"),
        "unknown model": (json.dumps({**VALID, "model": "llama-9000/awq"}), 404, "llama-9000/awq"),
        "empty messages": (json.dumps({**VALID, "messages": []}), 400, "messages"),
        "tool role": (json.dumps({**VALID, "messages": [{"role": "tool", "content": "x"}]}), 400, "messages.0.role"),
        "no role": (json.dumps({**VALID, "messages": [{"content": "x"}]}), 400, "messages.0.role"),
        "image part": (json.dumps({**VALID, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}), 400, "messages.0.content"),
        "max_tokens past the context": (json.dumps({**VALID, "max_tokens": 100_000}), 400, "context length"),
        "unknown field": (json.dumps({**VALID, "tools": []}), 400, "tools: unknown field"),
        "two choices": (json.dumps({**VALID, "n": 2}), 400, "n"),
        "blank content": (json.dumps({**VALID, "messages": [{"role": "user", "content": "   "}]}), 400, "content"),
        "a body over 1 MiB": (json.dumps({**VALID, "messages": [{"role": "user", "content": "x" * (1 << 20)}]}),
                              413, "over the gateway's limit"),
        "a prompt over the router's limit": (json.dumps({**VALID, "messages": [
            {"role": "user", "content": "word " * 40_000}]}), 400, "prompt"),
        "not an object": ("[1, 2, 3]", 400, ""),
    }
    for name, (body, status, fragment) in cases.items():
        response = post(gateway_mesh, body)
        error = response.json()["error"]
        assert response.status_code == status, (name, response.status_code, error)
        assert fragment in error["message"] or fragment == error.get("param"), (name, error)
        assert error["type"] and isinstance(error["message"], str), name
    # Unknown routes and methods, in the same format.
    assert httpx.get(f"{gateway_mesh.url}/v1/nothing").json()["error"]["type"] == "not_found_error"
    assert httpx.get(f"{gateway_mesh.url}/v1/chat/completions").status_code == 405
    # And the mesh still answers.
    assert post(gateway_mesh, json.dumps(VALID)).status_code == 200
    assert gateway_mesh.mesh.dead_processes() == []


async def test_a_client_that_disconnects_mid_stream_cancels_the_engine_request(gateway_mesh: GatewayMesh) -> None:
    # 480 tokens at 50 tokens/s would run for ~10 s; the client reads three chunks and leaves.
    body = {**VALID, "model": "syn-small/none", "max_tokens": 480, "stream": True}
    async with httpx.AsyncClient(base_url=gateway_mesh.url, headers=AUTH, timeout=30) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            events = 0
            async for line in response.aiter_lines():
                events += line.startswith("data:")
                if events == 3:
                    break
        # Not cancelled, the engine request would run for ~9 s more.
        assert await gateway_mesh.mesh.orphaned_engine_requests(settle_timeout_s=3.0) == 0
        # The same for a non-streamed answer whose client gives up.
        waiting = asyncio.create_task(client.post("/v1/chat/completions", json={**body, "stream": False}))

        async def started() -> bool:
            return (await gateway_mesh.mesh.worker_load("syn-small")).running_requests == 1
        for _ in range(100):
            if await started():
                break
            await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert await gateway_mesh.mesh.orphaned_engine_requests(settle_timeout_s=3.0) == 0
        metrics = (await client.get("/metrics")).text
    disconnects = [line for line in metrics.splitlines() if line.startswith("quantmesh_gateway_client_disconnects_total")]
    assert disconnects and float(disconnects[0].split()[-1]) >= 2


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                                         children, max_size=4),
                     max_leaves=12)
_FIELDS = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop",
           "presence_penalty", "frequency_penalty", "n", "stream", "stream_options", "user", "latency_budget_ms",
           "min_accuracy", "mode", "unexpected"]
# Budgets and token limits that are wrong, absent, or ample: a valid body always has the time it needs, so any 5xx
# is a gateway or mesh fault, never a budget the fuzzer made impossible.
_BUDGET = st.none() | st.sampled_from([0, -1, "x", 1.5, 10**12]) | st.integers(60_000, 3_600_000)
_TOKENS = st.none() | st.sampled_from([0, -3, "4", 2.5, 10**9]) | st.integers(1, 3) | st.integers(10_000, 10**6)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    body: dict = {**VALID, "max_tokens": 2}
    for field in draw(st.lists(st.sampled_from(_FIELDS), max_size=4, unique=True)):
        if field == "latency_budget_ms":
            value = draw(_BUDGET)
        elif field in ("max_tokens", "max_completion_tokens"):
            value = draw(_TOKENS)
        elif field == "stream":
            value = draw(st.booleans() | _JSON)
        else:
            value = draw(_JSON | st.just([{"role": draw(st.text(max_size=10)), "content": draw(st.text(max_size=30))}]))
        if value is None and draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = value
    return json.dumps(body).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=_bodies())
def test_fuzzed_bodies_never_get_a_5xx(gateway_mesh: GatewayMesh, body: bytes) -> None:
    response = post(gateway_mesh, body)
    assert response.status_code < 500, (body[:300], response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.json()["error"]["message"]
