"""A stream that waits long for its first token (a slow prefill) sends SSE keep-alive comments meanwhile, which
OpenAI's SDK ignores: its answer is the same."""

from __future__ import annotations

import dataclasses

import httpx

from tests.fixtures.gateway import ROUTE_KEY, running_gateway_mesh
from tests.reliability.meshes import synthetic_pair

TTFT_MS = 1500
KEEPALIVE_S = 0.2


async def test_a_slow_first_token_is_preceded_by_keep_alive_comments(tmp_path) -> None:
    slow = [dataclasses.replace(spec, env={**spec.env, "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": str(TTFT_MS)})
            for spec in synthetic_pair()]
    body = {"model": "syn-small/none", "messages": [{"role": "user", "content": "Hello."}], "max_tokens": 3,
            "stream": True}
    async for running in running_gateway_mesh(tmp_path, slow,
                                              gateway_env={"QUANTMESH_GATEWAY_STREAM_KEEPALIVE_S": str(KEEPALIVE_S)}):
        async with httpx.AsyncClient(base_url=running.url, timeout=30,
                                     headers={"authorization": f"Bearer {ROUTE_KEY}"}) as client, \
                client.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = [line async for line in response.aiter_lines() if line]
        first_content = next(i for i, line in enumerate(lines) if '"content":"lorem' in line)
        keepalives = [i for i, line in enumerate(lines) if line == ": keep-alive"]
        # ~1.5 s of prefill at one comment per 0.2 s, all before the first token, none after it.
        assert len(keepalives) >= 4 and max(keepalives) < first_content, lines[:12]
        assert lines[-1] == "data: [DONE]"
        stream = running.openai().chat.completions.create(stream=True, **{k: v for k, v in body.items()
                                                                          if k != "stream"})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "lorem ipsum dolor "
