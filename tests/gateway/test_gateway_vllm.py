"""The gateway in front of the real mesh (`mesh` fixture: `quantmesh up` on deploy/mesh/local.yaml, two vLLM
workers on the tiny models): OpenAI's SDK gets the same greedy text and token counts the worker itself reports,
and a client that leaves mid-stream leaves the engine with no running request."""

from __future__ import annotations

import time

import grpc
import httpx
import openai
import pytest

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.worker import worker_load
from tools.mesh.mesh import MeshEndpoints

pytestmark = pytest.mark.vllm

QUESTION = "List the planets of the solar system."


def _direct(address: str, max_tokens: int) -> tuple[str, int, int]:
    request = worker_pb2.GenerateRequest(
        request_id="direct", max_output_tokens=max_tokens, sampling=common_pb2.SamplingParams(temperature=0.0),
        chat=common_pb2.Conversation(messages=[common_pb2.ChatMessage(role=common_pb2.CHAT_ROLE_USER,
                                                                       content=QUESTION)]))
    with grpc.insecure_channel(address) as channel:
        parts, usage = [], None
        for response in worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(request, timeout=60):
            if response.HasField("chunk"):
                parts.append(response.chunk.text)
            else:
                usage = response.complete.usage
    assert usage is not None
    return "".join(parts), usage.prompt_tokens, usage.completion_tokens


def test_openai_sdk_gets_what_the_vllm_worker_generates(mesh: MeshEndpoints) -> None:
    assert mesh.gateway_url is not None
    client = openai.OpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)
    listed = [model.id for model in client.models.list().data]
    assert listed == ["auto", *(f"{w.model_id}/{w.quantization}" for w in mesh.workers)]
    for worker in mesh.workers:
        stream = client.chat.completions.create(
            model=f"{worker.model_id}/{worker.quantization}", messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24, temperature=0.0, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        usage = chunks[-1].usage
        assert (text, usage.prompt_tokens, usage.completion_tokens) == _direct(worker.address, 24)


def test_a_client_that_leaves_mid_stream_aborts_the_vllm_request(mesh: MeshEndpoints) -> None:
    worker = mesh.workers[0]
    body = {"model": f"{worker.model_id}/{worker.quantization}", "max_tokens": 1500, "stream": True,
            "messages": [{"role": "user", "content": QUESTION}], "temperature": 1.0, "latency_budget_ms": 120_000}
    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as client, \
            client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data:")
            if events == 5:
                break
        assert worker_load(worker.address).running_requests == 1
    deadline = time.monotonic() + 5.0
    while worker_load(worker.address).running_requests:
        assert time.monotonic() < deadline, "the engine request still runs 5 s after the client left"
        time.sleep(0.05)
