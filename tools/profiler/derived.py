"""Figures derived from measurements: cost per 1M tokens, tokenization ratio, recommended max_model_len."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.profiles import derived_cost_per_1m_tokens_usd
from tools.profiler.stats import percentile

MAX_MODEL_LEN_PERCENTILE = 95.0

__all__ = ["cost_per_1m_tokens_usd", "recommended_max_model_len", "tokenization_ratio"]


def cost_per_1m_tokens_usd(instance_price_per_hour_usd: float, throughput_tokens_per_s: float) -> float:
    """USD per million output tokens: price per hour / (throughput tokens/s x 3600) x 1e6.

    The router's own formula (`core.profiles.derived_cost_per_1m_tokens_usd`), which its schema checks.

    Raises:
        ValueError: a non-positive price or throughput.
    """
    if instance_price_per_hour_usd <= 0 or throughput_tokens_per_s <= 0:
        raise ValueError(
            f"price ({instance_price_per_hour_usd} USD/h) and throughput ({throughput_tokens_per_s} tokens/s) "
            "must be positive"
        )
    return derived_cost_per_1m_tokens_usd(instance_price_per_hour_usd, throughput_tokens_per_s)


def tokenization_ratio(model_prompt_tokens: Sequence[int], reference_tokens: Sequence[int]) -> float:
    """Tokens of the served model per reference token, over the eval prompts: sum(model) / sum(reference).

    `model_prompt_tokens` are the worker's `usage.prompt_tokens` (its own tokenizer, with the BOS token and chat
    template it adds), so the ratio converts a reference estimate into what the worker will count for the same
    text: what the router needs to check max_model_len. A ratio of sums weights long prompts by their length.

    Raises:
        ValueError: lengths differ, no prompts, or no reference tokens.
    """
    if len(model_prompt_tokens) != len(reference_tokens):
        raise ValueError(f"{len(model_prompt_tokens)} model counts but {len(reference_tokens)} reference counts")
    total_reference = sum(reference_tokens)
    if not model_prompt_tokens or total_reference <= 0:
        raise ValueError("no reference tokens to compare against")
    return sum(model_prompt_tokens) / total_reference


def recommended_max_model_len(context_lengths: Sequence[int], q: float = MAX_MODEL_LEN_PERCENTILE) -> int:
    """The q-th percentile (default P95) of the eval set's context lengths, rounded up to a whole token.

    A context length is prompt tokens (the worker's count) + the item's output token budget: vLLM admits a request
    only when prompt + max_tokens fits max_model_len, and every token of max_model_len costs KV-cache memory, so
    sizing it to the P95 of real traffic avoids both rejections and wasted cache (the seed's pitfall 1).

    Raises:
        ValueError: no context lengths.
    """
    return math.ceil(percentile(context_lengths, q) - 1e-9)
