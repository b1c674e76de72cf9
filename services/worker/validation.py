"""Validation of `GenerateRequest` (pure: no engine, no I/O).

Every failure raises `core.errors.InvalidArgument` (gRPC INVALID_ARGUMENT) with a message that starts with
the offending field's path, for example "sampling.temperature must be in [0, 2], got 3.5". The ranges are those of
`quantmesh.common.v1.SamplingParams` (the OpenAI / vLLM conventions).
"""

from __future__ import annotations

import math

from core.errors import InvalidArgumentError
from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2

MAX_REQUEST_ID_CHARS = 128
MAX_STOP_STRINGS = 8
MAX_STOP_STRING_CHARS = 256
TEMPERATURE_RANGE = (0.0, 2.0)
PENALTY_RANGE = (-2.0, 2.0)
KNOWN_ROLES = frozenset({common_pb2.CHAT_ROLE_SYSTEM, common_pb2.CHAT_ROLE_USER, common_pb2.CHAT_ROLE_ASSISTANT})


def validate_generate_request(request: worker_pb2.GenerateRequest, *, max_model_len: int) -> None:
    """Checks every field that can be checked without the tokenizer.

    Raises:
        InvalidArgumentError: naming the first bad field.
    """
    if len(request.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(
            f"request_id must be at most {MAX_REQUEST_ID_CHARS} characters, got {len(request.request_id)}"
        )
    _validate_input(request)
    if request.max_output_tokens < 1:
        raise InvalidArgumentError("max_output_tokens must be at least 1")
    if request.max_output_tokens >= max_model_len:
        raise InvalidArgumentError(
            f"max_output_tokens must be below max_model_len ({max_model_len}) to leave room for the prompt, "
            f"got {request.max_output_tokens}"
        )
    if request.HasField("sampling"):
        _validate_sampling(request.sampling)


def validate_prompt_length(prompt_tokens: int, max_output_tokens: int, *, max_model_len: int) -> None:
    """Checks that prompt + output fit the model's context.

    Raises:
        InvalidArgumentError: naming the prompt (or chat) field, with the token counts.
    """
    if prompt_tokens + max_output_tokens > max_model_len:
        raise InvalidArgumentError(
            f"prompt is {prompt_tokens} tokens: prompt + max_output_tokens ({max_output_tokens}) exceeds "
            f"max_model_len ({max_model_len}); at most {max(max_model_len - max_output_tokens, 0)} prompt tokens fit"
        )


def _validate_input(request: worker_pb2.GenerateRequest) -> None:
    kind = request.WhichOneof("input")
    if kind is None:
        raise InvalidArgumentError("prompt or chat is required")
    if kind == "prompt":
        if not request.prompt.strip():
            raise InvalidArgumentError("prompt must not be empty")
        return
    messages = request.chat.messages
    if not messages:
        raise InvalidArgumentError("chat.messages must contain at least one message")
    for index, message in enumerate(messages):
        if message.role not in KNOWN_ROLES:
            raise InvalidArgumentError(
                f"chat.messages[{index}].role must be CHAT_ROLE_SYSTEM, CHAT_ROLE_USER or CHAT_ROLE_ASSISTANT, "
                f"got {message.role}"
            )
        if not message.content.strip():
            raise InvalidArgumentError(f"chat.messages[{index}].content must not be empty")


def _validate_sampling(sampling: common_pb2.SamplingParams) -> None:
    if sampling.HasField("temperature"):
        _check_range("sampling.temperature", sampling.temperature, *TEMPERATURE_RANGE)
    if sampling.HasField("top_p"):
        top_p = sampling.top_p
        if not math.isfinite(top_p) or not 0.0 < top_p <= 1.0:
            raise InvalidArgumentError(f"sampling.top_p must be in (0, 1], got {top_p}")
    if sampling.HasField("top_k") and sampling.top_k != -1 and sampling.top_k < 1:
        raise InvalidArgumentError(f"sampling.top_k must be -1 (disabled) or at least 1, got {sampling.top_k}")
    if sampling.HasField("presence_penalty"):
        _check_range("sampling.presence_penalty", sampling.presence_penalty, *PENALTY_RANGE)
    if sampling.HasField("frequency_penalty"):
        _check_range("sampling.frequency_penalty", sampling.frequency_penalty, *PENALTY_RANGE)
    if len(sampling.stop) > MAX_STOP_STRINGS:
        raise InvalidArgumentError(f"sampling.stop must have at most {MAX_STOP_STRINGS} strings, got {len(sampling.stop)}")
    for index, stop in enumerate(sampling.stop):
        if not stop or len(stop) > MAX_STOP_STRING_CHARS:
            raise InvalidArgumentError(f"sampling.stop[{index}] must be 1 to {MAX_STOP_STRING_CHARS} characters")


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgumentError(f"{field} must be in [{low:g}, {high:g}], got {value}")
