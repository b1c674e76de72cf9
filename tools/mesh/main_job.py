"""The main job: held-out prompts streamed through `RouterService.Generate` with the async SDK, one result each.

Each prompt is sent with the sample's requirements (required accuracy per source where configured) and greedy or
seeded sampling; the client measures its own TTFT (first token chunk) and e2e latency next to the router's figures.
A failed call is a result too (its status and message), so one bad prompt does not stop the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from clients.messages import Requirements, Sampling, TokenChunk
from clients.sdk import AsyncQuantmeshClient
from core.errors import QuantmeshError
from core.vocabulary import RoutingMode
from tools.mesh.mesh_config import SampleConfig
from tools.mesh.report import PromptResult
from tools.mesh.sample import SamplePrompt, sample_prompts

SAMPLING_SEED = 0


def requirements_for(config: SampleConfig, source: str) -> Requirements:
    """The requirements a prompt of `source` is sent with."""
    r = config.requirements
    return Requirements(
        max_output_tokens=r.max_output_tokens,
        latency_budget_ms=r.latency_budget_ms,
        required_accuracy=config.required_accuracy(source),
        mode=RoutingMode(r.mode),
    )


async def run_prompt(
    client: AsyncQuantmeshClient, prompt: SamplePrompt, requirements: Requirements, sampling: Sampling
) -> PromptResult:
    """Streams one prompt and returns what happened (never raises `QuantmeshError`: it is recorded)."""
    started = time.perf_counter()
    first_token_at: float | None = None
    stream = client.generate(prompt.text, requirements, sampling=sampling)
    error_code = error_message = ""
    try:
        async for event in stream:
            if isinstance(event, TokenChunk) and event.token_ids and first_token_at is None:
                first_token_at = time.perf_counter()
    except QuantmeshError as exc:
        error_code, error_message = exc.code.name, exc.message
    else:
        if stream.summary is None:  # a server bug: the contract ends every successful stream with a summary
            error_code, error_message = "INTERNAL", "stream ended without a summary"
    ended = time.perf_counter()
    return PromptResult(
        source=prompt.source,
        prompt=prompt.text,
        latency_budget_ms=requirements.latency_budget_ms,
        required_accuracy=requirements.required_accuracy,
        decision=stream.decision,
        summary=None if error_code else stream.summary,
        text=stream.text,
        client_ttft_ms=None if first_token_at is None else (first_token_at - started) * 1000.0,
        client_e2e_ms=(ended - started) * 1000.0,
        error_code=error_code,
        error_message=error_message,
    )


async def run_sample(
    router_address: str,
    config: SampleConfig,
    on_result: Callable[[int, int, PromptResult], None] = lambda index, total, result: None,
) -> list[PromptResult]:
    """Runs the sample of `config` against the router at `router_address`.

    Args:
        router_address: host:port of the router.
        config: Which prompts, with which requirements, how many in flight.
        on_result: Called as each prompt finishes with (1-based index in the sample, sample size, result).

    Returns:
        The results in sample order.

    Raises:
        ValueError / FileNotFoundError: the sample cannot be drawn from `config.data_dir` (see `tools.mesh.sample`).
    """
    prompts = sample_prompts(config.data_dir, config.counts, seed=config.seed, split_seed=config.split_seed)
    sampling = Sampling(temperature=config.temperature, seed=SAMPLING_SEED)
    results: list[PromptResult | None] = [None] * len(prompts)
    slots = asyncio.Semaphore(config.concurrency)
    async with AsyncQuantmeshClient(router_address) as client:

        async def one(index: int, prompt: SamplePrompt) -> None:
            async with slots:
                result = await run_prompt(client, prompt, requirements_for(config, prompt.source), sampling)
            results[index] = result
            on_result(index + 1, len(prompts), result)

        await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    return [r for r in results if r is not None]
