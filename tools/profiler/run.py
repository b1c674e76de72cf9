"""Profiles workers: preflight every worker, then per worker the accuracy run and the concurrency sweep.

Workers are profiled one after another (each on its own hardware in production, but on a shared test machine in
parallel runs would measure each other). Any failure of any worker raises `ProfileRunError`: a profile set is
all-or-nothing, so a partial set is never written or published.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from core.vocabulary import Quantization, from_proto
from quantmesh.worker.v1 import worker_pb2
from tools.profiler.driver import Generation, PromptInput, WorkerDriver, WorkerError
from tools.profiler.eval_set import EvalItem
from tools.profiler.measurement import ItemResult, PairMeasurement, WorkerFacts
from tools.profiler.scoring import Score, score
from tools.profiler.stats import LevelSummary, RequestTrace, summarize_level


class ProfileRunError(Exception):
    """Profiling failed; nothing must be written or published. The message names the worker and the cause."""


@dataclass(frozen=True)
class RunConfig:
    """How to drive each worker.

    Attributes:
        concurrency_levels: Requests kept in flight in each latency run, ascending (the lowest gives the profile's
            unloaded TTFT and ITL, the best throughput the saturation figure).
        requests_per_level: Requests per level (at least the level's concurrency are sent).
        load_output_tokens: max_output_tokens of each load request.
        default_max_output_tokens: Output budget of eval items that do not set one.
        accuracy_concurrency: Eval items in flight during the accuracy run.
        warmup_requests: Unmeasured requests sent first (engine warm-up: compilation, caches).
        timeout_s: Deadline of each RPC, s.
        connect_timeout_s: Deadline of the preflight health check, s.
    """

    concurrency_levels: tuple[int, ...] = (1, 2, 4)
    requests_per_level: int = 8
    load_output_tokens: int = 32
    default_max_output_tokens: int = 64
    accuracy_concurrency: int = 4
    warmup_requests: int = 1
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.concurrency_levels or min(self.concurrency_levels) < 1:
            raise ValueError("concurrency_levels: need at least one level, each at least 1")
        if list(self.concurrency_levels) != sorted(set(self.concurrency_levels)):
            raise ValueError("concurrency_levels: must be strictly ascending")
        if self.load_output_tokens < 2:
            raise ValueError("load_output_tokens: at least 2 (ITL needs two tokens)")
        for name in ("requests_per_level", "default_max_output_tokens", "accuracy_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")


Progress = Callable[[str, int], None]
"""Called with (stage description, units done since the last call); stages: "accuracy", "load c=N"."""


def _ignore_progress(stage: str, advance: int) -> None:
    del stage, advance


async def _gather_limited(count: int, limit: int, make: Callable[[int], object]) -> list:
    semaphore = asyncio.Semaphore(limit)

    async def guarded(index: int):
        async with semaphore:
            return await make(index)  # type: ignore[misc]

    tasks = [asyncio.ensure_future(guarded(index)) for index in range(count)]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:  # one failure ends the run: cancel the rest (their engine requests are aborted)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def preflight(drivers: Sequence[WorkerDriver], connect_timeout_s: float) -> list[worker_pb2.ModelInfo]:
    """Checks every worker serves and reads its model info, before anything is measured.

    Raises:
        ProfileRunError: a worker is unreachable or not serving, reports no quantization, or two workers serve the
            same model-quantization pair (one profile per pair); every failing worker is named.
    """
    results = await asyncio.gather(*(_describe_worker(driver, connect_timeout_s) for driver in drivers),
                                   return_exceptions=True)
    problems = [str(result) for result in results if isinstance(result, WorkerError | ProfileRunError)]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, WorkerError | ProfileRunError):
            raise result
    if problems:
        raise ProfileRunError("; ".join(problems))
    infos: list[worker_pb2.ModelInfo] = results  # type: ignore[assignment]
    seen: dict[tuple[str, int], str] = {}
    for driver, info in zip(drivers, infos, strict=True):
        key = (info.pair.model_id, info.pair.quantization)
        if key in seen:
            raise ProfileRunError(f"workers {seen[key]} and {driver.address} serve the same pair "
                                  f"{info.pair.model_id}/{from_proto(Quantization, key[1])}: profile one of them")
        seen[key] = driver.address
    return infos


async def _describe_worker(driver: WorkerDriver, connect_timeout_s: float) -> worker_pb2.ModelInfo:
    await driver.check_serving(connect_timeout_s)
    info = await driver.model_info()
    if from_proto(Quantization, info.pair.quantization) is Quantization.UNSPECIFIED or not info.pair.model_id:
        raise ProfileRunError(f"worker {driver.address}: GetModelInfo reports no model_id or quantization")
    return info


async def measure_accuracy(driver: WorkerDriver, items: Sequence[EvalItem], config: RunConfig,
                           tokenizer: ReferenceTokenizer, progress: Progress) -> list[ItemResult]:
    """Asks every eval item once (greedy decoding) and scores the answers.

    A worker refusing an item with INVALID_ARGUMENT (for example prompt + output over its max_model_len) scores
    that item wrong, as production would fail it; any other error ends the run.

    Raises:
        WorkerError: the worker failed.
    """

    async def one(index: int) -> ItemResult:
        item = items[index]
        budget = item.max_output_tokens or config.default_max_output_tokens
        reference_tokens = tokenizer.count_tokens(item.reference_text)
        try:
            generation = await driver.generate(item, max_output_tokens=budget, stop=item.stop)
        except WorkerError as exc:
            if exc.code is not grpc.StatusCode.INVALID_ARGUMENT:
                raise
            progress("accuracy", 1)
            return ItemResult(item, Score(False, None, f"refused by the worker: {exc}"), "", None, 0,
                              reference_tokens, budget)
        progress("accuracy", 1)
        return ItemResult(item, score(item, generation.text), generation.text, generation.trace.prompt_tokens,
                          generation.trace.completion_tokens, reference_tokens, budget)

    return await _gather_limited(len(items), config.accuracy_concurrency, one)


async def measure_level(driver: WorkerDriver, prompts: Sequence[PromptInput], concurrency: int,
                        config: RunConfig, progress: Progress) -> LevelSummary:
    """Runs len(prompts) requests with `concurrency` in flight (closed loop) and summarises their timings.

    Sampling is seeded at temperature 1 so that outputs run to the token budget as real traffic does rather than
    repeating one greedy path; a request that ends early still counts, with the tokens it produced.

    Raises:
        WorkerError: a request failed.
        ValueError: no request generated two tokens (ITL cannot be measured).
    """
    stage = f"load c={concurrency}"

    async def one(index: int) -> RequestTrace:
        generation: Generation = await driver.generate(prompts[index], max_output_tokens=config.load_output_tokens,
                                                       temperature=1.0, seed=index)
        progress(stage, 1)
        return generation.trace

    traces = await _gather_limited(len(prompts), concurrency, one)
    return summarize_level(concurrency, traces)


def requests_at(config: RunConfig, concurrency: int) -> int:
    """Requests sent at a level: the configured number, at least one per slot and a whole number of waves."""
    per_level = max(config.requests_per_level, concurrency)
    return math.ceil(per_level / concurrency) * concurrency


async def profile_worker(driver: WorkerDriver, info: worker_pb2.ModelInfo, items: Sequence[EvalItem],
                         load_prompts: Sequence[PromptInput], config: RunConfig, tokenizer: ReferenceTokenizer,
                         progress: Progress = _ignore_progress) -> PairMeasurement:
    """Measures one worker: warm-up, accuracy on `items`, then each concurrency level on `load_prompts`.

    Raises:
        ProfileRunError: the worker failed (its address and the cause in the message).
    """
    try:
        for index in range(config.warmup_requests):
            await driver.generate(load_prompts[index % len(load_prompts)], max_output_tokens=config.load_output_tokens)
        results = await measure_accuracy(driver, items, config, tokenizer, progress)
        levels = []
        offset = 0
        for concurrency in config.concurrency_levels:
            count = requests_at(config, concurrency)
            prompts = [load_prompts[(offset + i) % len(load_prompts)] for i in range(count)]
            offset += count
            levels.append(await measure_level(driver, prompts, concurrency, config, progress))
        after = await driver.model_info()  # memory figures after the load, at their peak
    except WorkerError as exc:
        raise ProfileRunError(str(exc)) from exc
    except ValueError as exc:
        raise ProfileRunError(f"worker {driver.address}: {exc}") from exc
    measured_at = dt.datetime.now(dt.UTC)
    quantization = from_proto(Quantization, info.pair.quantization)  # known: checked in preflight
    return PairMeasurement(driver.address, info.pair.model_id, quantization, worker_facts(after), tuple(levels),
                           tuple(results), measured_at)


def worker_facts(info: worker_pb2.ModelInfo) -> WorkerFacts:
    return WorkerFacts(
        max_model_len=info.max_model_len,
        kv_cache_capacity_tokens=info.kv_cache_capacity_tokens,
        memory_used_bytes=info.gpu.memory_used_bytes,
        memory_total_bytes=info.gpu.memory_total_bytes,
        device=info.gpu.name,
        engine_version=info.engine_version,
        tokenizer=info.tokenizer,
    )
