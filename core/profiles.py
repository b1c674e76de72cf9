"""The profile document: what the router knows about each model-quantization pair.

One JSON document (schema `ProfileDocument`) holds every pair's measured figures. It is validated with these
models when it is published and again when a router reads it (`parse_profile_document`); an invalid document is
never routed from. Every model is frozen and forbids unknown fields, so a typo in a field name is an error, not a
silently ignored figure.

Cost is derived, not guessed (docs/architecture.md, "Profiles"): `cost_per_1m_tokens_usd` (output tokens) must equal
`instance_price_per_hour_usd / (throughput_tokens_per_s * 3600) * 1e6` within 1%, and `cost_per_1m_input_tokens_usd`
likewise from `prefill_tokens_per_s`. Accuracy is graded, not typed in: where a profile carries the graded counts
(`graded_by_tier`, `graded_by_intent`), each accuracy must equal correct / total and its 95% Wilson interval must
match the counts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.vocabulary import (
    ComplexityTier,
    KnownIntent,
    KnownQuantization,
    KnownTier,
    Quantization,
    TaskIntent,
)

SCHEMA_VERSION = 1
COST_DERIVATION_TOLERANCE = 0.01  # relative: rounding in the profiler's output, not a different price

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
WILSON_Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile
GRADED_TOLERANCE = 1e-6  # rounding in the profiler's output


def wilson_interval(correct: int, total: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson 1927; Agresti & Coull 1998 for its coverage).

    Returns (low, high) in [0, 1]; unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or
    n correct answers.

    Raises:
        ValueError: total < 1 or correct outside [0, total].
    """
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got {correct}/{total}")
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half_width = z * ((p * (1 - p) / total + z * z / (4 * total * total)) ** 0.5) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierAccuracy(_Strict):
    """Measured accuracy of a pair on each complexity tier of the eval set, each in [0, 1]."""

    simple: Fraction
    complex: Fraction
    hard: Fraction

    def for_tier(self, tier: ComplexityTier) -> float:
        return float(getattr(self, tier.value))


class GradedSlice(_Strict):
    """Graded answers of one slice of the eval set (a tier or an intent): counts and their 95% Wilson interval."""

    correct: int = Field(ge=0)
    total: int = Field(ge=1)
    ci95_low: Fraction
    ci95_high: Fraction

    @classmethod
    def of(cls, correct: int, total: int) -> GradedSlice:
        low, high = wilson_interval(correct, total)
        return cls(correct=correct, total=total, ci95_low=low, ci95_high=high)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    @model_validator(mode="after")
    def _check_interval(self) -> GradedSlice:
        low, high = wilson_interval(self.correct, self.total)  # ValueError when correct > total
        if abs(self.ci95_low - low) > GRADED_TOLERANCE or abs(self.ci95_high - high) > GRADED_TOLERANCE:
            raise ValueError(f"ci95 [{self.ci95_low}, {self.ci95_high}] is not the Wilson interval of "
                             f"{self.correct}/{self.total} = [{low:.6f}, {high:.6f}]")
        return self


# host:port, a comma-separated list of them, or dns:///host:port (services.router.replicas resolves them).
_ADDRESS = r"[^\s:,/]+:\d{1,5}"
ENDPOINT_PATTERN = rf"^(dns:///{_ADDRESS}|{_ADDRESS}(,{_ADDRESS})*)$"


def endpoint_addresses(endpoint: str) -> tuple[str, ...]:
    """The addresses a listed endpoint names (one for host:port); () for a dns:/// endpoint (resolved later)."""
    return () if endpoint.startswith("dns:///") else tuple(endpoint.split(","))


class PairProfile(_Strict):
    """The measured profile of one model-quantization pair, served at `endpoint`."""

    model_id: str = Field(min_length=1, max_length=256)
    quantization: KnownQuantization
    endpoint: str = Field(
        pattern=ENDPOINT_PATTERN, description="Where the pair's InferenceWorkers listen: host:port (one worker), "
        "host:port,host:port,... (replicas), or dns:///host:port (every address the name resolves to, re-resolved "
        "as pods come and go: a Kubernetes headless Service).")
    instance_price_per_hour_usd: float = Field(gt=0, description="Price of the instance serving the pair, USD/h.")
    throughput_tokens_per_s: float = Field(gt=0, description="Measured output tokens/s at saturation.")
    cost_per_1m_tokens_usd: float = Field(
        gt=0, description="USD per 1M output tokens. Derived: price per hour / (throughput x 3600) x 1e6.")
    prefill_tokens_per_s: float | None = Field(
        None, gt=0, description="Measured prompt tokens/s (unloaded prefill); None in profiles that predate it.")
    cost_per_1m_input_tokens_usd: float | None = Field(
        None, gt=0, description="USD per 1M input tokens. Derived: price per hour / (prefill_tokens_per_s x 3600) "
        "x 1e6; None: input tokens are priced like output tokens.")
    ttft_p50_ms: float = Field(gt=0)
    ttft_p99_ms: float = Field(gt=0)
    itl_p50_ms: float = Field(gt=0, description="Inter-token latency of one stream, median, ms.")
    accuracy_by_tier: TierAccuracy
    accuracy_by_intent: dict[KnownIntent, Fraction] = Field(
        default_factory=dict, description="Accuracy per task intent, where the eval set measured it."
    )
    graded_by_tier: dict[KnownTier, GradedSlice] = Field(
        default_factory=dict, description="The graded counts behind accuracy_by_tier (every tier, or none).")
    graded_by_intent: dict[KnownIntent, GradedSlice] = Field(
        default_factory=dict, description="The graded counts behind accuracy_by_intent (every intent it lists).")
    mean_output_tokens_by_intent: dict[KnownIntent, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Mean tokens the pair generated per answer of each intent on the eval "
        "set: the router's expected output length (bounded by the request's max_output_tokens).")
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
        if (self.prefill_tokens_per_s is None) != (self.cost_per_1m_input_tokens_usd is None):
            raise ValueError("give both prefill_tokens_per_s and cost_per_1m_input_tokens_usd, or neither")
        if self.prefill_tokens_per_s is not None and self.cost_per_1m_input_tokens_usd is not None:
            derived = derived_cost_per_1m_tokens_usd(self.instance_price_per_hour_usd, self.prefill_tokens_per_s)
            if abs(self.cost_per_1m_input_tokens_usd - derived) > COST_DERIVATION_TOLERANCE * derived:
                raise ValueError(
                    f"cost_per_1m_input_tokens_usd ({self.cost_per_1m_input_tokens_usd}) does not follow from "
                    f"instance_price_per_hour_usd / (prefill_tokens_per_s x 3600) x 1e6 = {derived:.6g}"
                )
        self._check_graded()
        return self

    def _check_graded(self) -> None:
        if self.graded_by_tier and set(self.graded_by_tier) != set(ComplexityTier.known()):
            raise ValueError("graded_by_tier: give every tier's counts, or none")
        for tier, graded in self.graded_by_tier.items():
            if abs(self.accuracy_by_tier.for_tier(tier) - graded.accuracy) > GRADED_TOLERANCE:
                raise ValueError(f"accuracy_by_tier.{tier.value} ({self.accuracy_by_tier.for_tier(tier)}) is not "
                                 f"the graded {graded.correct}/{graded.total}")
        for intent, graded in self.graded_by_intent.items():
            if intent not in self.accuracy_by_intent:
                raise ValueError(f"graded_by_intent.{intent.value}: no accuracy_by_intent for it")
            if abs(self.accuracy_by_intent[intent] - graded.accuracy) > GRADED_TOLERANCE:
                raise ValueError(f"accuracy_by_intent.{intent.value} ({self.accuracy_by_intent[intent]}) is not "
                                 f"the graded {graded.correct}/{graded.total}")

    @property
    def key(self) -> tuple[str, Quantization]:
        """The pair's identity: (model_id, quantization)."""
        return (self.model_id, self.quantization)

    @property
    def name(self) -> str:
        """Readable pair name, for example "llama-8b/awq"."""
        return f"{self.model_id}/{self.quantization.value}"

    def input_cost_per_1m_tokens_usd(self) -> float:
        """USD per 1M input tokens: the measured input price, else the output price (older profiles)."""
        return self.cost_per_1m_input_tokens_usd or self.cost_per_1m_tokens_usd

    def expected_output_tokens(self, intent: TaskIntent | None, max_output_tokens: int) -> int:
        """Tokens this pair is expected to generate: its measured mean for the intent (rounded up), at most
        `max_output_tokens`; `max_output_tokens` itself when the intent was not measured (the safe bound)."""
        mean = self.mean_output_tokens_by_intent.get(intent) if intent is not None else None
        if mean is None:
            return max_output_tokens
        return max(1, min(max_output_tokens, math.ceil(mean - 1e-9)))

    @property
    def overall_accuracy(self) -> float:
        """Accuracy on the whole eval set, in [0, 1]: graded correct / total over the tiers, or the mean of the
        per-tier accuracies when the profile has no graded counts."""
        if self.graded_by_tier:
            correct = sum(graded.correct for graded in self.graded_by_tier.values())
            return correct / sum(graded.total for graded in self.graded_by_tier.values())
        tiers = (self.accuracy_by_tier.simple, self.accuracy_by_tier.complex, self.accuracy_by_tier.hard)
        return sum(tiers) / len(tiers)

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
            for address in endpoint_addresses(pair.endpoint) or (pair.endpoint,):
                if address in seen_endpoints:
                    raise ValueError(
                        f"pairs.{index}.endpoint: {address} is already pairs.{seen_endpoints[address]}'s "
                        "(one worker serves one pair)"
                    )
                seen_endpoints[address] = index
            seen_keys[pair.key] = index
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
