"""Unit tests of the synthetic engine: coalescing for slow consumers, abort, load counters (no server)."""

from __future__ import annotations

import asyncio

from core.vocabulary import FinishReason
from services.worker.engine import GenerationRequest
from services.worker.synthetic_engine import WORDS, SyntheticEngine


async def _engine(tokens_per_s: float = 1000.0) -> SyntheticEngine:
    engine = SyntheticEngine("synthetic", tokens_per_s=tokens_per_s, ttft_ms=0, max_model_len=512, max_num_seqs=8)
    await engine.start()
    return engine


async def test_a_slow_consumer_gets_merged_deltas_without_gaps() -> None:
    engine = await _engine(tokens_per_s=1000.0)
    request = GenerationRequest("slow", engine.tokenize_prompt("hi"), max_output_tokens=60)
    deltas = []
    async for delta in engine.generate(request):
        deltas.append(delta)
        await asyncio.sleep(0.01)  # deliberately slow consumer: ~10 tokens become due while it is busy
    token_ids = [token for delta in deltas for token in delta.token_ids]
    assert token_ids == [i % len(WORDS) for i in range(60)]  # every token once, in order
    assert len(deltas) < 30  # merged: far fewer deltas than tokens
    assert max(len(delta.token_ids) for delta in deltas) > 1
    assert deltas[-1].finished and deltas[-1].finish_reason is FinishReason.LENGTH
    assert deltas[-1].completion_tokens == 60 and deltas[-1].prompt_tokens == 3


async def test_abort_ends_the_stream_and_frees_the_request() -> None:
    engine = await _engine(tokens_per_s=100.0)
    request = GenerationRequest("to-abort", engine.tokenize_prompt("hi"), max_output_tokens=1000)
    stream = engine.generate(request)
    first = await anext(stream)
    assert first.token_ids
    assert engine.load().running_requests == 1
    await engine.abort("to-abort")
    rest = [delta async for delta in stream]
    assert rest[-1].finished and rest[-1].finish_reason is FinishReason.ABORT
    assert engine.load().running_requests == 0


async def test_closing_the_stream_early_frees_the_request() -> None:
    engine = await _engine(tokens_per_s=100.0)
    stream = engine.generate(GenerationRequest("closed", engine.tokenize_prompt("hi"), max_output_tokens=1000))
    await anext(stream)
    await stream.aclose()
    load = engine.load()
    assert (load.running_requests, load.kv_cache_usage_fraction) == (0, 0.0)
