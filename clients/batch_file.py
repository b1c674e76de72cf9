"""Batch files in OpenAI's batch JSONL formats: requests in (`read_batch_file`), results out (`result_line`).

An input line (https://platform.openai.com/docs/guides/batch, "Preparing your batch file")::

    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}}

`url` is `/v1/chat/completions` (`messages`) or `/v1/completions` (`prompt`, a raw prompt). Read from `body`:
`max_tokens` (or `max_completion_tokens`; default 64), `temperature`, `top_p`, `seed`, `stop`, and quantmesh's
`required_accuracy`; `model` must be "auto" or absent (the router chooses the pair; a batch is never pinned).

An output line, one per request, as OpenAI's: `{"id", "custom_id", "response": {"status_code": 200, "request_id",
"body": <chat.completion>}, "error": null}`, or `"response": null, "error": {"code", "message"}`; the body's
`quantmesh` object adds the pair, queue wait, attempts and cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clients.batches import BatchRequest, BatchResult
from clients.messages import ChatMessage, Sampling
from core.vocabulary import ChatRole

URLS = ("/v1/chat/completions", "/v1/completions")
DEFAULT_MAX_TOKENS = 64
_ROLES = {role.value: role for role in ChatRole.known()}


class BatchFileError(ValueError):
    """The file has bad lines; `errors` holds one "line N: what is wrong" per bad line (nothing was submitted)."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        super().__init__(f"{path}: {len(errors)} bad line(s)\n" + "\n".join(errors))
        self.errors = errors


class _BadLine(Exception):
    """What is wrong with one line."""


def read_batch_file(path: Path) -> list[BatchRequest]:
    """Every request of the file, in order.

    Raises:
        BatchFileError: listing every bad line by number (1-based), and duplicate or missing custom_ids.
        OSError: the file cannot be read.
    """
    requests: list[BatchRequest] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            request = _request(json.loads(text))
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        except _BadLine as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if request.custom_id in first_line:
            errors.append(f"line {number}: custom_id {request.custom_id!r} is also on line "
                          f"{first_line[request.custom_id]}")
            continue
        first_line[request.custom_id] = number
        requests.append(request)
    if not requests and not errors:
        errors.append("line 1: the file has no requests")
    if errors:
        raise BatchFileError(path, errors)
    return requests


def _request(line: Any) -> BatchRequest:
    if not isinstance(line, dict):
        raise _BadLine("expected a JSON object with custom_id, method, url and body")
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _BadLine("custom_id: a non-empty string is required")
    if line.get("method", "POST") != "POST":
        raise _BadLine(f"method: must be POST, got {line.get('method')!r}")
    url = line.get("url")
    if url not in URLS:
        raise _BadLine(f"url: must be one of {', '.join(URLS)}, got {url!r}")
    body = line.get("body")
    if not isinstance(body, dict):
        raise _BadLine("body: a JSON object is required")
    if body.get("model", "auto") != "auto":
        raise _BadLine(f"body.model: must be \"auto\" (the router chooses the pair), got {body.get('model')!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _BadLine(f"body.max_tokens: a positive integer is required, got {max_tokens!r}")
    accuracy = body.get("required_accuracy", 0.0)
    if not isinstance(accuracy, int | float) or isinstance(accuracy, bool):
        raise _BadLine(f"body.required_accuracy: a number in [0, 1] is required, got {accuracy!r}")
    return BatchRequest(custom_id, _prompt(url, body), max_output_tokens=max_tokens,
                        required_accuracy=float(accuracy), sampling=_sampling(body))


def _prompt(url: str, body: dict[str, Any]) -> str | list[ChatMessage]:
    if url == "/v1/completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _BadLine("body.prompt: a non-empty string is required for /v1/completions")
        return prompt
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadLine("body.messages: a non-empty list is required for /v1/chat/completions")
    chat = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _BadLine(f"body.messages[{index}].role: must be one of {', '.join(_ROLES)}")
        if not isinstance(message.get("content"), str):
            raise _BadLine(f"body.messages[{index}].content: a string is required")
        chat.append(ChatMessage(_ROLES[message["role"]], message["content"]))
    return chat


def _sampling(body: dict[str, Any]) -> Sampling | None:
    fields: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            if not isinstance(body[name], int | float) or isinstance(body[name], bool):
                raise _BadLine(f"body.{name}: a number is required, got {body[name]!r}")
            fields[name] = float(body[name])
    if body.get("seed") is not None:
        if not isinstance(body["seed"], int) or isinstance(body["seed"], bool):
            raise _BadLine(f"body.seed: an integer is required, got {body['seed']!r}")
        fields["seed"] = body["seed"]
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _BadLine("body.stop: a string or a list of strings is required")
        fields["stop"] = tuple(stops)
    return Sampling(**fields) if fields else None


def result_line(batch_id: str, result: BatchResult) -> dict[str, Any]:
    """One output line in OpenAI's batch output format (module docstring)."""
    request_id = f"{batch_id}-{result.index}"
    line: dict[str, Any] = {"id": f"batch_req_{request_id}", "custom_id": result.custom_id}
    if result.error_code is not None:
        return {**line, "response": None, "error": {"code": result.error_code, "message": result.error_message}}
    assert result.usage is not None and result.finish_reason is not None
    body = {
        "id": f"chatcmpl-{request_id}", "object": "chat.completion", "model": str(result.served_by),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason.value}],
        "usage": {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens,
                  "total_tokens": result.usage.total_tokens},
        "quantmesh": {"served_by": str(result.served_by), "queue_wait_ms": round(result.queue_wait_ms, 3),
                      "attempts": result.attempts, "e2e_latency_ms": result.e2e_latency_ms,
                      "actual_cost_usd": result.actual_cost_usd},
    }
    return {**line, "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}
