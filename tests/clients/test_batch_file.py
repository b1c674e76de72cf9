"""OpenAI-format batch files: what `read_batch_file` takes, every bad line reported by number, and the output line."""

from __future__ import annotations

import json

import pytest

from clients.batch_file import BatchFileError, read_batch_file, result_line
from clients.batches import BatchResult
from clients.messages import ChatMessage, Pair, Sampling, Usage
from core.vocabulary import ChatRole, FinishReason, Quantization


def _line(custom_id: str, **body: object) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], **body}})


def test_chat_and_completion_lines_become_requests(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    completion = json.dumps({"custom_id": "raw", "method": "POST", "url": "/v1/completions",
                             "body": {"prompt": "The capital of Peru is", "max_tokens": 5}})
    path.write_text("\n".join([_line("a", max_tokens=12, temperature=0.5, seed=3, stop="\n"), "", completion,
                               _line("b", max_completion_tokens=7, required_accuracy=0.8)]) + "\n")
    first, raw, second = read_batch_file(path)
    assert (first.custom_id, first.prompt, first.max_output_tokens) == ("a", [ChatMessage(ChatRole.USER, "Hi")], 12)
    assert first.sampling == Sampling(temperature=0.5, seed=3, stop=("\n",))
    assert (raw.prompt, raw.max_output_tokens, raw.sampling) == ("The capital of Peru is", 5, None)
    assert (second.max_output_tokens, second.required_accuracy) == (7, 0.8)


def test_every_bad_line_is_reported_by_number_and_nothing_is_returned(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        _line("ok"),
        "{not json",
        json.dumps({"custom_id": "u", "method": "POST", "url": "/v1/embeddings", "body": {}}),
        _line("m", model="gpt-4o"),
        _line("t", max_tokens=0),
        _line("ok"),
        json.dumps({"custom_id": "r", "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "robot", "content": "x"}]}}),
        json.dumps(["a list"]),
    ]) + "\n")
    with pytest.raises(BatchFileError) as info:
        read_batch_file(path)
    errors = info.value.errors
    assert [error.split(":", 1)[0] for error in errors] == [f"line {n}" for n in (2, 3, 4, 5, 6, 7, 8)]
    assert "not JSON" in errors[0] and "url: must be one of" in errors[1] and 'must be "auto"' in errors[2]
    assert "max_tokens: a positive integer" in errors[3] and "also on line 1" in errors[4]
    assert "messages[0].role" in errors[5] and "expected a JSON object" in errors[6]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(BatchFileError, match="no requests"):
        read_batch_file(empty)


def test_results_are_written_as_openai_batch_output_lines() -> None:
    output = BatchResult(index=2, custom_id="a", queue_wait_ms=12.5, attempts=1, text="Lima",
                         usage=Usage(5, 1, 6), finish_reason=FinishReason.STOP,
                         served_by=Pair("qwen", Quantization.W8A8), actual_cost_usd=1e-6, e2e_latency_ms=40.0)
    line = result_line("b1", output)
    assert line["custom_id"] == "a" and line["error"] is None and line["response"]["status_code"] == 200
    body = line["response"]["body"]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Lima"}
    assert (body["usage"]["total_tokens"], body["model"], body["quantmesh"]["attempts"]) == (6, "qwen/w8a8", 1)
    failed = result_line("b1", BatchResult(index=3, custom_id="x", queue_wait_ms=1.0, attempts=5,
                                           error_code="UNAVAILABLE", error_message="no worker"))
    assert failed["response"] is None and failed["error"] == {"code": "UNAVAILABLE", "message": "no worker"}
