"""The profile document: what the router knows about each model-quantization pair.

One JSON document (schema `ProfileDocument`) holds every pair's measured figures. It is validated with these
models when it is published and again when a router reads it (`parse_profile_document`); an invalid document is
never routed from. Every model is frozen and forbids unknown fields, so a typo in a field name is an error, not a
silently ignored figure.

Cost is derived, not guessed (docs/architecture.md, "Profiles"): `cost_per_1m_tokens_usd` must equal
`instance_price_per_hour_usd / (throughput_tokens_per_s * 3600) * 1e6` within 1%.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.vocabulary import ComplexityTier, KnownIntent, KnownQuantization, Quantization, TaskIntent

SCHEMA_VERSION = 1
COST_DERIVATION_TOLERANCE = 0.01  # relative: rounding in the profiler's output, not a different price

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierAccuracy(_Strict):
    """Measured accuracy of a pair on each complexity tier of the eval set, each in [0, 1]."""

    simple: Fraction
    complex: Fraction
    hard: Fraction

    def for_tier(self, tier: ComplexityTier) -> float:
        return float(getattr(self, tier.value))


class PairProfile(_Strict):
    """The measured profile of one model-quantization pair, served at `endpoint`."""

    model_id: str = Field(min_length=1, max_length=256)
    quantization: KnownQuantization
    endpoint: str = Field(pattern=r"^[^\s:]+:\d{1,5}$", description="host:port of the InferenceWorker.")
    instance_price_per_hour_usd: float = Field(gt=0, description="Price of the instance serving the pair, USD/h.")
    throughput_tokens_per_s: float = Field(gt=0, description="Measured output tokens/s at saturation.")
    cost_per_1m_tokens_usd: float = Field(gt=0, description="Derived: price per hour / (throughput x 3600) x 1e6.")
    ttft_p50_ms: float = Field(gt=0)
    ttft_p99_ms: float = Field(gt=0)
    itl_p50_ms: float = Field(gt=0, description="Inter-token latency of one stream, median, ms.")
    accuracy_by_tier: TierAccuracy
    accuracy_by_intent: dict[KnownIntent, Fraction] = Field(
        default_factory=dict, description="Accuracy per task intent, where the eval set measured it."
    )
    max_model_len: int = Field(ge=1, description="Maximum prompt + output tokens per request.")
    gpu_memory_gib: float = Field(ge=0)
    tokenization_ratio: float = Field(
        gt=0, le=10, description="Tokens of this model's tokenizer per token of the reference tokenizer."
    )
    measured_at: dt.datetime

    @model_validator(mode="after")
    def _check_consistency(self) -> PairProfile:
        if self.ttft_p99_ms < self.ttft_p50_ms:
            raise ValueError(f"ttft_p99_ms ({self.ttft_p99_ms}) is below ttft_p50_ms ({self.ttft_p50_ms})")
        derived = derived_cost_per_1m_tokens_usd(self.instance_price_per_hour_usd, self.throughput_tokens_per_s)
        if abs(self.cost_per_1m_tokens_usd - derived) > COST_DERIVATION_TOLERANCE * derived:
            raise ValueError(
                f"cost_per_1m_tokens_usd ({self.cost_per_1m_tokens_usd}) does not follow from "
                f"instance_price_per_hour_usd / (throughput_tokens_per_s x 3600) x 1e6 = {derived:.6g}"
            )
        return self

    @property
    def key(self) -> tuple[str, Quantization]:
        """The pair's identity: (model_id, quantization)."""
        return (self.model_id, self.quantization)

    @property
    def name(self) -> str:
        """Readable pair name, for example "llama-8b/awq"."""
        return f"{self.model_id}/{self.quantization.value}"

    def expected_accuracy(self, tier: ComplexityTier, intent: TaskIntent | None) -> float:
        """Accuracy for this tier, lowered to the intent's accuracy where that intent was measured.

        The lower of the two is the conservative estimate: a pair must be good enough on both slices.
        """
        accuracy = self.accuracy_by_tier.for_tier(tier)
        if intent is not None and intent in self.accuracy_by_intent:
            accuracy = min(accuracy, self.accuracy_by_intent[intent])
        return accuracy


class ProfileDocument(_Strict):
    """The versioned set of pair profiles a router routes from.

    `version` is assigned by the profile store on publish (0 for a document never published, such as a static file
    written by hand); `published_at` likewise.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    version: int = Field(0, ge=0)
    published_at: dt.datetime | None = None
    pairs: list[PairProfile] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique(self) -> ProfileDocument:
        seen_keys: dict[tuple[str, Quantization], int] = {}
        seen_endpoints: dict[str, int] = {}
        for index, pair in enumerate(self.pairs):
            if pair.key in seen_keys:
                raise ValueError(
                    f"pairs.{index}: duplicate pair {pair.name} (also pairs.{seen_keys[pair.key]})"
                )
            if pair.endpoint in seen_endpoints:
                raise ValueError(
                    f"pairs.{index}.endpoint: {pair.endpoint} is already pairs.{seen_endpoints[pair.endpoint]}'s "
                    "(one worker serves one pair)"
                )
            seen_keys[pair.key] = index
            seen_endpoints[pair.endpoint] = index
        return self

    def with_version(self, version: int, published_at: dt.datetime) -> ProfileDocument:
        """A copy stamped with a store-assigned version and publication time."""
        return self.model_copy(update={"version": version, "published_at": published_at})

    def to_json(self) -> str:
        return self.model_dump_json()


class ProfileValidationError(ValueError):
    """A profile document failed validation.

    Attributes:
        errors: One message per problem, each starting with the path of the offending field
            (for example "pairs.1.accuracy_by_tier.hard: Input should be less than or equal to 1").
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def derived_cost_per_1m_tokens_usd(instance_price_per_hour_usd: float, throughput_tokens_per_s: float) -> float:
    """USD per million tokens from the instance price (USD/h) and the measured throughput (tokens/s)."""
    return instance_price_per_hour_usd / (throughput_tokens_per_s * 3600.0) * 1e6


def _format_error(error: dict) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "document"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}"


def parse_profile_document(document_json: str | bytes) -> ProfileDocument:
    """Parses and validates a profile document.

    Raises:
        ProfileValidationError: not JSON, or any field invalid; `errors` names each field path.
    """
    try:
        raw = json.loads(document_json)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileValidationError([f"document: not valid JSON ({exc})"]) from exc
    if not isinstance(raw, dict):
        raise ProfileValidationError(["document: must be a JSON object"])
    try:
        return ProfileDocument.model_validate(raw)
    except ValidationError as exc:
        raise ProfileValidationError([_format_error(error) for error in exc.errors()]) from exc
