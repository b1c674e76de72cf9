"""A batch's requests and results: the checks at CreateBatch, the RouterService request each becomes for a
consumer, and the error results stored when a request has no output."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from core.errors import InvalidArgumentError
from core.requests import validate_router_request
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import batch_pb2, router_pb2
from services.common.limits import validate_prompt_size
from services.router.convert import input_text

MAX_CUSTOM_ID_CHARS = 64


def generate_request(batch_id: str, index: int, item: batch_pb2.BatchItem,
                     latency_budget_ms: int) -> router_pb2.GenerateRequest:
    """The RouterService.Generate request of the batch's request `index`: cost-first (ROUTING_MODE_BATCH) within
    the batch's latency budget; its request id is `<batch_id>-<index>` (the same on every attempt, so the router's
    and workers' logs join up)."""
    request = router_pb2.GenerateRequest(
        request_id=f"{batch_id}-{index}",
        requirements=router_pb2.RoutingRequirements(max_output_tokens=item.max_output_tokens,
                                                    latency_budget_ms=latency_budget_ms,
                                                    required_accuracy=item.required_accuracy,
                                                    mode=common_pb2.ROUTING_MODE_BATCH))
    if item.WhichOneof("input") == "chat":
        request.chat.CopyFrom(item.chat)
    elif item.WhichOneof("input") == "prompt":
        request.prompt = item.prompt
    if item.HasField("sampling"):
        request.sampling.CopyFrom(item.sampling)
    return request


def validate_items(items: Sequence[batch_pb2.BatchItem], *, latency_budget_ms: int, max_items: int,
                   max_prompt_bytes: int) -> None:
    """Checks a whole batch before anything is queued.

    Raises:
        InvalidArgumentError: an empty batch or one over `max_items` (the message gives the limit); or the first bad
            request, named `items[<index>] (custom_id '<id>')` with the field, as RouterService.Generate names it.
    """
    if not items:
        raise InvalidArgumentError("items: at least one request is required")
    if len(items) > max_items:
        raise InvalidArgumentError(f"items: {len(items)} requests, over this router's limit of {max_items} per "
                                   "batch; split the batch")
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"items[{index}] (custom_id {item.custom_id!r})"
        if not 0 < len(item.custom_id) <= MAX_CUSTOM_ID_CHARS or not item.custom_id.isprintable():
            raise InvalidArgumentError(f"{where}.custom_id: 1 to {MAX_CUSTOM_ID_CHARS} printable characters")
        if item.custom_id in seen:
            raise InvalidArgumentError(f"{where}.custom_id: also the custom_id of items[{seen[item.custom_id]}]; "
                                       "each must be unique within the batch")
        seen[item.custom_id] = index
        request = generate_request("batch", index, item, latency_budget_ms)
        try:
            validate_router_request(request)
            validate_prompt_size(input_text(request), max_prompt_bytes)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{where}.{exc.message}") from None


def error_result(index: int, custom_id: str, code: str, message: str) -> batch_pb2.BatchResult:
    """The result of a request without an output: `code` is a gRPC status code name."""
    return batch_pb2.BatchResult(index=index, custom_id=custom_id,
                                 error=batch_pb2.BatchError(code=code, message=message))


def cancelled_result(index: int, custom_id: str) -> batch_pb2.BatchResult:
    """The result of a request cancelled before it had one."""
    return error_result(index, custom_id, grpc.StatusCode.CANCELLED.name,
                        "the batch was cancelled before this request had a result")
