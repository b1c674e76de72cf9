"""Builders of valid profile documents for the router tests (real pydantic validation, no shortcuts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.profiles import ProfileDocument, derived_cost_per_1m_tokens_usd

MEASURED_AT = "2025-01-01T00:00:00Z"


def pair_dict(model_id: str, endpoint: str, *, quantization: str = "none", price_per_hour_usd: float = 1.0,
              throughput_tokens_per_s: float = 1000.0, ttft_p50_ms: float = 20.0, ttft_p99_ms: float = 40.0,
              itl_p50_ms: float = 5.0, accuracy: tuple[float, float, float] = (0.9, 0.8, 0.7),
              accuracy_by_intent: dict[str, float] | None = None, max_model_len: int = 4096,
              tokenization_ratio: float = 1.0, **overrides: Any) -> dict[str, Any]:
    """One pair profile as a JSON-ready dict, with its cost derived from price and throughput."""
    pair = {
        "model_id": model_id,
        "quantization": quantization,
        "endpoint": endpoint,
        "instance_price_per_hour_usd": price_per_hour_usd,
        "throughput_tokens_per_s": throughput_tokens_per_s,
        "cost_per_1m_tokens_usd": derived_cost_per_1m_tokens_usd(price_per_hour_usd, throughput_tokens_per_s),
        "ttft_p50_ms": ttft_p50_ms,
        "ttft_p99_ms": ttft_p99_ms,
        "itl_p50_ms": itl_p50_ms,
        "accuracy_by_tier": dict(zip(("simple", "complex", "hard"), accuracy, strict=True)),
        "accuracy_by_intent": accuracy_by_intent or {},
        "max_model_len": max_model_len,
        "gpu_memory_gib": 1.0,
        "tokenization_ratio": tokenization_ratio,
        "measured_at": MEASURED_AT,
    }
    pair.update(overrides)
    return pair


def document_dict(*pairs: dict[str, Any], version: int = 0) -> dict[str, Any]:
    return {"schema_version": 1, "version": version, "pairs": list(pairs)}


def document(*pairs: dict[str, Any], version: int = 0) -> ProfileDocument:
    return ProfileDocument.model_validate(document_dict(*pairs, version=version))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
