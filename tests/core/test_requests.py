"""Unit tests of the one request validation (`core.requests`): the worker's and the router's requests."""

from __future__ import annotations

import math

import pytest

from core.errors import InvalidArgumentError
from core.requests import (
    MAX_STOP_STRINGS,
    validate_prompt_length,
    validate_router_request,
    validate_worker_request,
)
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2

MAX_MODEL_LEN = 512


def _request(**overrides: object) -> worker_pb2.GenerateRequest:
    fields: dict[str, object] = {"prompt": "Hello", "max_output_tokens": 8}
    fields.update(overrides)
    return worker_pb2.GenerateRequest(**fields)


def _chat(*messages: tuple[int, str]) -> common_pb2.Conversation:
    return common_pb2.Conversation(messages=[common_pb2.ChatMessage(role=r, content=c) for r, c in messages])


def test_a_well_formed_request_passes() -> None:
    validate_worker_request(
        _request(sampling=common_pb2.SamplingParams(temperature=0.7, top_p=0.9, top_k=40, stop=["\n"])),
        max_model_len=MAX_MODEL_LEN,
    )
    validate_worker_request(
        _request(prompt=None, chat=_chat((common_pb2.CHAT_ROLE_SYSTEM, "Be brief."), (common_pb2.CHAT_ROLE_USER, "Hi"))),
        max_model_len=MAX_MODEL_LEN,
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (worker_pb2.GenerateRequest(max_output_tokens=8), "input"),
        (_request(prompt=""), "prompt"),
        (_request(prompt="   "), "prompt"),
        (_request(max_output_tokens=0), "max_output_tokens"),
        (_request(max_output_tokens=MAX_MODEL_LEN), "max_output_tokens"),
        (_request(request_id="x" * 129), "request_id"),
        (_request(prompt=None, chat=common_pb2.Conversation()), "chat.messages"),
        (_request(prompt=None, chat=_chat((common_pb2.CHAT_ROLE_UNSPECIFIED, "Hi"))), "chat.messages[0].role"),
        (_request(prompt=None, chat=_chat((common_pb2.CHAT_ROLE_USER, "Hi"), (7, "x"))), "chat.messages[1].role"),
        (_request(prompt=None, chat=_chat((common_pb2.CHAT_ROLE_USER, ""))), "chat.messages[0].content"),
        (_request(sampling=common_pb2.SamplingParams(temperature=2.5)), "sampling.temperature"),
        (_request(sampling=common_pb2.SamplingParams(temperature=-0.1)), "sampling.temperature"),
        (_request(sampling=common_pb2.SamplingParams(temperature=math.nan)), "sampling.temperature"),
        (_request(sampling=common_pb2.SamplingParams(top_p=0.0)), "sampling.top_p"),
        (_request(sampling=common_pb2.SamplingParams(top_p=1.5)), "sampling.top_p"),
        (_request(sampling=common_pb2.SamplingParams(top_k=0)), "sampling.top_k"),
        (_request(sampling=common_pb2.SamplingParams(top_k=-2)), "sampling.top_k"),
        (_request(sampling=common_pb2.SamplingParams(presence_penalty=2.5)), "sampling.presence_penalty"),
        (_request(sampling=common_pb2.SamplingParams(frequency_penalty=-3)), "sampling.frequency_penalty"),
        (_request(sampling=common_pb2.SamplingParams(stop=["x"] * (MAX_STOP_STRINGS + 1))), "sampling.stop"),
        (_request(sampling=common_pb2.SamplingParams(stop=["ok", ""])), "sampling.stop[1]"),
    ],
)
def test_bad_input_names_the_field(request_: worker_pb2.GenerateRequest, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_worker_request(request_, max_model_len=MAX_MODEL_LEN)
    assert caught.value.message.startswith(field), caught.value.message


def test_boundary_values_are_accepted() -> None:
    sampling = common_pb2.SamplingParams(
        temperature=2.0, top_p=1.0, top_k=-1, presence_penalty=-2.0, frequency_penalty=2.0, stop=["s"] * 8
    )
    validate_worker_request(
        _request(sampling=sampling, max_output_tokens=MAX_MODEL_LEN - 1, request_id="r" * 128),
        max_model_len=MAX_MODEL_LEN,
    )


def test_prompt_length_must_leave_room_for_the_output() -> None:
    validate_prompt_length(500, 12, max_model_len=MAX_MODEL_LEN)
    with pytest.raises(InvalidArgumentError) as caught:
        validate_prompt_length(501, 12, max_model_len=MAX_MODEL_LEN)
    assert caught.value.message.startswith("prompt")
    assert "500 prompt tokens fit" in caught.value.message


def _routed(pinned: common_pb2.ModelQuantizationPair | None) -> router_pb2.GenerateRequest:
    requirements = router_pb2.RoutingRequirements(max_output_tokens=8, latency_budget_ms=1000)
    if pinned is not None:
        requirements.pinned_pair.CopyFrom(pinned)
    return router_pb2.GenerateRequest(prompt="hi", requirements=requirements)


def test_a_pinned_pair_needs_a_model_id_and_a_known_quantization() -> None:
    validate_router_request(_routed(None))
    validate_router_request(_routed(common_pb2.ModelQuantizationPair(model_id="m", quantization=common_pb2.QUANTIZATION_AWQ)))
    with pytest.raises(InvalidArgumentError, match=r"requirements\.pinned_pair\.model_id: required"):
        validate_router_request(_routed(common_pb2.ModelQuantizationPair(quantization=common_pb2.QUANTIZATION_AWQ)))
    with pytest.raises(InvalidArgumentError, match=r"requirements\.pinned_pair\.quantization: unknown value 0"):
        validate_router_request(_routed(common_pb2.ModelQuantizationPair(model_id="m")))
