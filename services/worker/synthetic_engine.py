"""A model-free `Engine` that emits deterministic tokens at a fixed rate.

It exists ONLY to benchmark the router and gRPC path without the model's speed (selected with
`QUANTMESH_WORKER_ENGINE=synthetic`); it never answers a question. Token i of every request is word
`WORDS[i % len(WORDS)]` (id i % len(WORDS)), the first after `ttft_ms`, then one every 1/`tokens_per_s` s. A
consumer that falls behind gets every token already due in one delta (the coalescing vLLM's collector does).
Stop strings are ignored (every request ends with FinishReason.LENGTH); there is no admission queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from core.vocabulary import FinishReason
from services.worker.engine import (
    ChatTurn,
    Engine,
    EngineDeadError,
    EngineLoad,
    EngineModelInfo,
    EngineNotReadyError,
    GenerationDelta,
    GenerationRequest,
)
from services.worker.load import LoadTracker

WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor",
)
KV_CACHE_CAPACITY_TOKENS = 65_536
BOS_TOKEN_ID = 0


class SyntheticEngine(Engine):
    """Args: model (a label), tokens_per_s and ttft_ms per request, max_model_len and max_num_seqs (reported)."""

    def __init__(
        self, model: str, *, tokens_per_s: float, ttft_ms: float, max_model_len: int, max_num_seqs: int
    ) -> None:
        self._model = model
        self._interval_s = 1.0 / tokens_per_s
        self._ttft_s = ttft_ms / 1000.0
        self._max_model_len = max_model_len
        self._max_num_seqs = max_num_seqs
        self._load = LoadTracker()
        self._running: dict[str, int] = {}  # request id -> tokens held in the (pretend) KV cache
        self._aborted: set[str] = set()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        self._started = True

    def _require_started(self) -> None:
        if not self._started:
            raise EngineNotReadyError("engine is starting")
        if self._closed:
            raise EngineDeadError("engine is closed")

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """One token per UTF-8 byte, after a BOS token."""
        self._require_started()
        return [BOS_TOKEN_ID, *prompt.encode()]

    def tokenize_chat(self, messages: Sequence[ChatTurn]) -> list[int]:
        return self.tokenize_prompt("".join(f"{turn.role}: {turn.content}\n" for turn in messages) + "assistant: ")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        self._require_started()
        prompt_tokens = len(request.prompt_token_ids)
        self._track(request.request_id, prompt_tokens)
        emitted = 0
        try:
            await asyncio.sleep(self._ttft_s)
            first_token_at = time.monotonic()
            while emitted < request.max_output_tokens:
                if request.request_id in self._aborted or self._closed:
                    yield GenerationDelta([], "", True, FinishReason.ABORT, prompt_tokens, emitted)
                    return
                due = min(request.max_output_tokens, 1 + int((time.monotonic() - first_token_at) / self._interval_s))
                if due <= emitted:
                    await asyncio.sleep(first_token_at + emitted * self._interval_s - time.monotonic())
                    continue
                ids = [i % len(WORDS) for i in range(emitted, due)]
                emitted = due
                self._track(request.request_id, prompt_tokens + emitted)
                self._load.record_generated(len(ids))
                finished = emitted == request.max_output_tokens
                yield GenerationDelta(
                    token_ids=ids,
                    text="".join(f"{WORDS[i]} " for i in ids),
                    finished=finished,
                    finish_reason=FinishReason.LENGTH if finished else None,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=emitted,
                )
        finally:
            self._running.pop(request.request_id, None)
            self._aborted.discard(request.request_id)
            self._publish()

    def _track(self, request_id: str, tokens_held: int) -> None:
        self._running[request_id] = tokens_held
        self._publish()

    def _publish(self) -> None:
        held = sum(self._running.values())
        self._load.update_scheduler(len(self._running), 0, held / KV_CACHE_CAPACITY_TOKENS)

    async def abort(self, request_id: str) -> None:
        if request_id in self._running:
            self._aborted.add(request_id)

    def load(self) -> EngineLoad:
        return self._load.snapshot()

    async def wait_for_load_change(self, since_version: int, timeout_s: float) -> None:
        await self._load.wait_for_change(since_version, timeout_s)

    def model_info(self) -> EngineModelInfo:
        self._require_started()
        return EngineModelInfo(
            engine_version="synthetic 1",
            model_path=self._model,
            tokenizer="synthetic-bytes",
            max_model_len=self._max_model_len,
            kv_cache_capacity_tokens=KV_CACHE_CAPACITY_TOKENS,
            max_num_seqs=self._max_num_seqs,
        )

    async def check_health(self) -> None:
        self._require_started()

    async def close(self) -> None:
        self._closed = True
