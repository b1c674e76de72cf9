"""What the profiler measured on one worker, as plain data (no I/O): the input of `tools.profiler.document`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.vocabulary import Quantization
from tools.profiler.eval_set import EvalItem
from tools.profiler.scoring import Score
from tools.profiler.stats import LevelSummary


@dataclass(frozen=True)
class WorkerFacts:
    """What the worker reports about itself (GetModelInfo), read after the load runs.

    Attributes:
        max_model_len: Maximum prompt + output tokens per request.
        kv_cache_capacity_tokens: KV-cache capacity, tokens.
        memory_used_bytes: Device memory used by the worker (NVML on a GPU, the engine's figure otherwise), bytes.
        memory_total_bytes: Device memory (host memory reserved for the engine on a CPU), bytes.
        device: Device name ("NVIDIA L4", "cpu").
        engine_version: For example "vllm 0.11.0".
        tokenizer: The tokenizer name or path the worker loaded.
    """

    max_model_len: int
    kv_cache_capacity_tokens: int
    memory_used_bytes: int
    memory_total_bytes: int
    device: str
    engine_version: str
    tokenizer: str


@dataclass(frozen=True)
class ItemResult:
    """One eval item's outcome on one pair.

    Attributes:
        item: The eval item.
        score: The verdict.
        output: The generated text ("" when the worker refused the input).
        prompt_tokens: The worker's prompt token count, or None when it refused the input.
        completion_tokens: Tokens generated.
        reference_tokens: Tokens of the item's text under the reference tokenizer.
        max_output_tokens: The output budget asked.
    """

    item: EvalItem
    score: Score
    output: str
    prompt_tokens: int | None
    completion_tokens: int
    reference_tokens: int
    max_output_tokens: int


@dataclass(frozen=True)
class PairMeasurement:
    """Everything measured on one worker."""

    endpoint: str
    model_id: str
    quantization: Quantization
    facts: WorkerFacts
    levels: tuple[LevelSummary, ...]
    items: tuple[ItemResult, ...]
    measured_at: dt.datetime
