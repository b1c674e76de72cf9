"""The one validation of generation requests, for the router (before any classification or routing) and the worker.

Pure: no engine, no I/O. Every failure raises `core.errors.InvalidArgumentError` (gRPC INVALID_ARGUMENT) with a
message that starts with the offending field's path, for example "sampling.temperature: must be in [0, 2], got 3.5",
so a caller can fix its request. The ranges are those of `quantmesh.common.v1.SamplingParams` (the OpenAI and vLLM
conventions). The router checks everything a worker would refuse except what needs the chosen pair's tokenizer
(the prompt's length in that model's tokens, `validate_prompt_length`).
"""

from __future__ import annotations

import math

from core.errors import InvalidArgumentError
from core.vocabulary import ChatRole, Quantization, RoutingMode, is_known_proto
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2

MAX_REQUEST_ID_CHARS = 128
MAX_STOP_STRINGS = 8
MAX_STOP_STRING_CHARS = 256
TEMPERATURE_RANGE = (0.0, 2.0)
PENALTY_RANGE = (-2.0, 2.0)

RouterRequest = router_pb2.RouteRequest | router_pb2.GenerateRequest


def validate_router_request(request: RouterRequest) -> None:
    """Checks a RouteRequest or GenerateRequest: request id, input, requirements and (Generate) sampling.

    Raises:
        InvalidArgumentError: naming the first bad field.
    """
    validate_request_id(request.request_id)
    validate_input(request)
    if not request.HasField("requirements"):
        raise InvalidArgumentError("requirements: required")
    requirements = request.requirements
    _at_least_one("requirements.max_output_tokens", requirements.max_output_tokens)
    _at_least_one("requirements.latency_budget_ms", requirements.latency_budget_ms)
    accuracy = requirements.required_accuracy
    if math.isnan(accuracy) or not 0.0 <= accuracy <= 1.0:
        raise InvalidArgumentError(f"requirements.required_accuracy: must be in [0, 1], got {accuracy}")
    if requirements.mode != 0 and not is_known_proto(RoutingMode, requirements.mode):
        raise InvalidArgumentError(f"requirements.mode: unknown value {requirements.mode}")
    if requirements.HasField("pinned_pair"):
        pinned = requirements.pinned_pair
        if not pinned.model_id:
            raise InvalidArgumentError("requirements.pinned_pair.model_id: required when a pair is pinned")
        if not is_known_proto(Quantization, pinned.quantization):
            raise InvalidArgumentError(f"requirements.pinned_pair.quantization: unknown value {pinned.quantization}")
    if isinstance(request, router_pb2.GenerateRequest) and request.HasField("sampling"):
        validate_sampling(request.sampling)


def validate_worker_request(request: worker_pb2.GenerateRequest, *, max_model_len: int) -> None:
    """Checks a worker GenerateRequest: every field that can be checked without the tokenizer.

    Args:
        request: The request.
        max_model_len: The served model's context, tokens (prompt + output).

    Raises:
        InvalidArgumentError: naming the first bad field.
    """
    validate_request_id(request.request_id)
    validate_input(request)
    _at_least_one("max_output_tokens", request.max_output_tokens)
    if request.max_output_tokens >= max_model_len:
        raise InvalidArgumentError(
            f"max_output_tokens: must be below max_model_len ({max_model_len}) to leave room for the prompt, "
            f"got {request.max_output_tokens}"
        )
    if request.HasField("sampling"):
        validate_sampling(request.sampling)


def validate_request_id(request_id: str) -> None:
    """Raises `InvalidArgumentError` naming `request_id` when it is longer than `MAX_REQUEST_ID_CHARS`."""
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(f"request_id: at most {MAX_REQUEST_ID_CHARS} characters, got {len(request_id)}")


def validate_input(request: RouterRequest | worker_pb2.GenerateRequest) -> None:
    """Checks the `input` oneof: a non-blank prompt, or a chat of messages each with a known role and content.

    Raises:
        InvalidArgumentError: no input, a blank prompt, an empty chat, or a message with an unset or unknown role
            (proto3 enums are open: any int32 arrives) or blank content.
    """
    kind = request.WhichOneof("input")
    if kind is None:
        raise InvalidArgumentError("input: set either prompt or chat")
    if kind == "prompt":
        if not request.prompt.strip():
            raise InvalidArgumentError("prompt: must not be empty")
        return
    if not request.chat.messages:
        raise InvalidArgumentError("chat.messages: at least one message is required")
    for index, message in enumerate(request.chat.messages):
        if not is_known_proto(ChatRole, message.role):
            raise InvalidArgumentError(
                f"chat.messages[{index}].role: must be CHAT_ROLE_SYSTEM, CHAT_ROLE_USER or CHAT_ROLE_ASSISTANT, "
                f"got {message.role}"
            )
        if not message.content.strip():
            raise InvalidArgumentError(f"chat.messages[{index}].content: must not be empty")


def validate_sampling(sampling: common_pb2.SamplingParams) -> None:
    """Checks the set sampling fields against their ranges (unset fields keep the engine's defaults).

    Raises:
        InvalidArgumentError: naming the first field out of range, for example `sampling.top_p`.
    """
    if sampling.HasField("temperature"):
        _check_range("sampling.temperature", sampling.temperature, *TEMPERATURE_RANGE)
    if sampling.HasField("top_p"):
        top_p = sampling.top_p
        if not math.isfinite(top_p) or not 0.0 < top_p <= 1.0:
            raise InvalidArgumentError(f"sampling.top_p: must be in (0, 1], got {top_p}")
    if sampling.HasField("top_k") and sampling.top_k != -1 and sampling.top_k < 1:
        raise InvalidArgumentError(f"sampling.top_k: must be -1 (disabled) or at least 1, got {sampling.top_k}")
    if sampling.HasField("presence_penalty"):
        _check_range("sampling.presence_penalty", sampling.presence_penalty, *PENALTY_RANGE)
    if sampling.HasField("frequency_penalty"):
        _check_range("sampling.frequency_penalty", sampling.frequency_penalty, *PENALTY_RANGE)
    if len(sampling.stop) > MAX_STOP_STRINGS:
        raise InvalidArgumentError(f"sampling.stop: at most {MAX_STOP_STRINGS} strings, got {len(sampling.stop)}")
    for index, stop in enumerate(sampling.stop):
        if not stop or len(stop) > MAX_STOP_STRING_CHARS:
            raise InvalidArgumentError(f"sampling.stop[{index}]: must be 1 to {MAX_STOP_STRING_CHARS} characters")


def validate_prompt_length(prompt_tokens: int, max_output_tokens: int, *, max_model_len: int) -> None:
    """Checks that prompt + output fit the model's context (the worker, once the prompt is tokenized).

    Raises:
        InvalidArgumentError: naming the prompt, with the token counts and how many prompt tokens would fit.
    """
    if prompt_tokens + max_output_tokens > max_model_len:
        raise InvalidArgumentError(
            f"prompt is {prompt_tokens} tokens: prompt + max_output_tokens ({max_output_tokens}) exceeds "
            f"max_model_len ({max_model_len}); at most {max(max_model_len - max_output_tokens, 0)} prompt tokens fit"
        )


def _at_least_one(field: str, value: int) -> None:
    if value < 1:
        raise InvalidArgumentError(f"{field}: must be at least 1")


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgumentError(f"{field}: must be in [{low:g}, {high:g}], got {value}")
