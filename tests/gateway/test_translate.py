"""The gateway's pure translation: OpenAI bodies to router requests, pair ids, and the streamed chunk template."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidArgumentError, NotFoundError
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from services.gateway import translate
from services.gateway.app import content_chunk_template
from services.gateway.openai_types import ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta

DEFAULTS = {"default_budget_ms": 30_000, "default_max_tokens": 16}


def body(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                                 **fields})


@pytest.mark.parametrize("text", ["plain ", 'quote " and \\ backslash', "ünïcödé 🙂", "new\nline\t", ""])
def test_the_chunk_template_renders_what_the_model_does(text: str) -> None:
    prefix, suffix = content_chunk_template("chatcmpl-x", 1_700_000_000, "org/model-7b/awq")
    rendered = json.loads(prefix + json.dumps(text) + suffix)
    expected = json.loads(ChatCompletionChunk(id="chatcmpl-x", created=1_700_000_000, model="org/model-7b/awq",
                                              choices=[ChunkChoice(delta=Delta(content=text))]).model_dump_json())
    assert rendered == expected


def test_pair_ids_round_trip_and_unknown_ones_are_not_found() -> None:
    pair = translate.parse_pair_id("org/Qwen2.5-Coder-1.5B/w8a8")
    assert pair is not None and pair.model_id == "org/Qwen2.5-Coder-1.5B" and translate.pair_id(pair) == (
        "org/Qwen2.5-Coder-1.5B/w8a8")
    assert translate.parse_pair_id("auto") is None
    for model in ("gpt-4o", "org/model/int3", "/awq"):
        with pytest.raises(NotFoundError, match="GET /v1/models"):
            translate.parse_pair_id(model)


def test_requirements_prefer_the_body_then_headers_then_defaults() -> None:
    assert translate.requirements(body(), {}, **DEFAULTS) == router_pb2.RoutingRequirements(
        max_output_tokens=16, latency_budget_ms=30_000)
    headers = {"x-quantmesh-latency-budget-ms": "900", "x-quantmesh-min-accuracy": "0.5", "x-quantmesh-mode": "batch"}
    from_headers = translate.requirements(body(max_completion_tokens=7), headers, **DEFAULTS)
    assert (from_headers.latency_budget_ms, from_headers.required_accuracy, from_headers.max_output_tokens) == (
        900, 0.5, 7)
    assert from_headers.mode == common_pb2.ROUTING_MODE_BATCH
    from_body = translate.requirements(body(latency_budget_ms=50, min_accuracy=0.0, mode="interactive"), headers,
                                       **DEFAULTS)
    assert (from_body.latency_budget_ms, from_body.required_accuracy) == (50, 0.0)
    assert from_body.mode == common_pb2.ROUTING_MODE_INTERACTIVE
    for bad in ({"x-quantmesh-latency-budget-ms": "soon"}, {"x-quantmesh-min-accuracy": "nan"},
                {"x-quantmesh-mode": "fast"}):
        with pytest.raises(InvalidArgumentError, match="x-quantmesh-|mode"):
            translate.requirements(body(), bad, **DEFAULTS)


def test_a_chat_body_becomes_a_router_request() -> None:
    request = translate.generate_request(body(
        messages=[{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "Two "}, {"type": "text", "text": "parts"}]}],
        model="m/awq", temperature=0.0, stop="END", seed=3), {}, "req-1", **DEFAULTS)
    assert [(m.role, m.content) for m in request.chat.messages] == [
        (common_pb2.CHAT_ROLE_SYSTEM, "Be brief."), (common_pb2.CHAT_ROLE_USER, "Two parts")]
    assert request.requirements.pinned_pair == common_pb2.ModelQuantizationPair(
        model_id="m", quantization=common_pb2.QUANTIZATION_AWQ)
    assert request.sampling.HasField("temperature") and request.sampling.temperature == 0.0
    assert list(request.sampling.stop) == ["END"] and request.sampling.seed == 3
    assert not request.sampling.HasField("top_p") and request.request_id == "req-1"
