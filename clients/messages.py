"""Typed requests and results of the SDK, and their conversions to and from the quantmesh protos.

Callers of `clients.sdk` see only these frozen dataclasses and string enums, never protobuf messages. Enum values
are the proto enum names without their prefix, lower-cased (`QUANTIZATION_FP8` -> `Quantization.FP8 == "fp8"`).
Units are in the field names (`_ms`, `_usd`, `_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core import vocabulary
from core.classification import Classification
from core.vocabulary import (
    ChatRole,
    FinishReason,
    ProfileSource,
    Quantization,
    RejectionReason,
    RouteOutcome,
    RoutingMode,
)
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2


@dataclass(frozen=True)
class Pair:
    """A model-quantization pair: the unit the router chooses between."""

    model_id: str
    quantization: Quantization

    def __str__(self) -> str:
        return f"{self.model_id}/{self.quantization.value}"

    @classmethod
    def from_proto(cls, message: common_pb2.ModelQuantizationPair) -> Pair:
        return cls(
            message.model_id,
            vocabulary.from_proto(Quantization, message.quantization),
        )


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat conversation (UTF-8 text)."""

    role: ChatRole
    content: str

    def to_proto(self) -> common_pb2.ChatMessage:
        return common_pb2.ChatMessage(
            role=vocabulary.to_proto(self.role), content=self.content
        )


@dataclass(frozen=True)
class Requirements:
    """What a request asks of the router.

    Attributes:
        max_output_tokens: Tokens to generate at most, >= 1.
        latency_budget_ms: End-to-end budget in ms, >= 1; also the call's gRPC deadline (see `clients.sdk`).
        required_accuracy: Minimum expected accuracy of the chosen pair for this query's tier, in [0, 1].
        mode: Cheapest (the default: the cheapest pair meeting every constraint), or the weighted utility of
            interactive (latency first) or batch (cost first).

    The server validates the ranges (INVALID_ARGUMENT naming the field); the SDK does not pre-empt it.
    """

    max_output_tokens: int = 64
    latency_budget_ms: int = 2000
    required_accuracy: float = 0.0
    mode: RoutingMode = RoutingMode.CHEAPEST

    def to_proto(self) -> router_pb2.RoutingRequirements:
        return router_pb2.RoutingRequirements(
            max_output_tokens=self.max_output_tokens,
            latency_budget_ms=self.latency_budget_ms,
            required_accuracy=self.required_accuracy,
            mode=vocabulary.to_proto(self.mode),
        )


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; None leaves the engine default (temperature 1, top_p 1, top_k -1, penalties 0).

    Attributes:
        temperature: In [0, 2]; 0 is greedy.
        top_p: Nucleus mass in (0, 1].
        top_k: -1 (off) or >= 1.
        seed: Random seed for reproducible sampling.
        stop: Strings that end generation (not included in the output); at most 8.
        presence_penalty: In [-2, 2].
        frequency_penalty: In [-2, 2].
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def to_proto(self) -> common_pb2.SamplingParams:
        message = common_pb2.SamplingParams(stop=list(self.stop))
        for name in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None:
                setattr(message, name, value)
        return message


@dataclass(frozen=True)
class Rejection:
    """One hard constraint a candidate failed, with the figures behind it (`detail`, for a person)."""

    reason: RejectionReason
    detail: str


@dataclass(frozen=True)
class Candidate:
    """How the router scored one pair.

    Attributes:
        pair: The pair.
        eligible: Whether it met every hard constraint.
        rejections: Every constraint it failed (empty when eligible).
        utility: In [0, 1], higher is better; 0 when rejected.
        expected_accuracy: Profile accuracy for this query's tier (and intent), in [0, 1].
        predicted_ttft_ms: Predicted TTFT in ms, live queue included.
        predicted_latency_ms: Predicted e2e latency in ms, live queue included.
        estimated_cost_usd: Estimated cost of this request on this pair, in USD.
        estimated_input_tokens: Input tokens under this pair's tokenizer.
    """

    pair: Pair
    eligible: bool
    rejections: tuple[Rejection, ...]
    utility: float
    expected_accuracy: float
    predicted_ttft_ms: float
    predicted_latency_ms: float
    estimated_cost_usd: float
    estimated_input_tokens: int

    @classmethod
    def from_proto(cls, message: router_pb2.Candidate) -> Candidate:
        return cls(
            pair=Pair.from_proto(message.pair),
            eligible=message.eligible,
            rejections=tuple(
                Rejection(
                    vocabulary.from_proto(RejectionReason, r.reason),
                    r.detail,
                )
                for r in message.rejections
            ),
            utility=message.utility,
            expected_accuracy=message.expected_accuracy,
            predicted_ttft_ms=message.predicted_ttft_ms,
            predicted_latency_ms=message.predicted_latency_ms,
            estimated_cost_usd=message.estimated_cost_usd,
            estimated_input_tokens=message.estimated_input_tokens,
        )


@dataclass(frozen=True)
class RouteDecision:
    """The router's decision for one request.

    Attributes:
        request_id: The request id (the caller's, or generated by the router).
        outcome: Routed, fallback (no pair met every constraint: the most accurate healthy one) or rejected.
        chosen: The chosen pair; None when rejected.
        reason: Why this pair, in one sentence.
        candidates: Every candidate, best first.
        classification: What the classifier said (None if the router sent none).
        classifier_degraded: True when the router fell back to rule-based classification.
        profiles_version: Version of the profile document used.
        effective_budget_ms: Budget applied, in ms (the smaller of latency_budget_ms and the call's deadline).
        chosen_endpoint: The worker (host:port) of the chosen pair the request went to, or would go to (Route): its
            least-loaded healthy replica; "" when rejected.
    """

    request_id: str
    outcome: RouteOutcome
    chosen: Pair | None
    reason: str
    candidates: tuple[Candidate, ...]
    classification: Classification | None
    classifier_degraded: bool
    profiles_version: int
    effective_budget_ms: float
    chosen_endpoint: str = ""

    @classmethod
    def from_proto(cls, message: router_pb2.RouteDecision) -> RouteDecision:
        return cls(
            request_id=message.request_id,
            outcome=vocabulary.from_proto(RouteOutcome, message.outcome),
            chosen=Pair.from_proto(message.chosen) if message.HasField("chosen") else None,
            reason=message.reason,
            candidates=tuple(Candidate.from_proto(c) for c in message.candidates),
            classification=(
                Classification.from_proto(message.classification) if message.HasField("classification") else None
            ),
            classifier_degraded=message.classifier_degraded,
            profiles_version=message.profiles_version,
            effective_budget_ms=message.effective_budget_ms,
            chosen_endpoint=message.chosen_endpoint,
        )

    def candidate(self, pair: Pair) -> Candidate | None:
        """The candidate entry for `pair`, or None."""
        return next((c for c in self.candidates if c.pair == pair), None)


@dataclass(frozen=True)
class TokenChunk:
    """A run of generated tokens.

    Attributes:
        text: Detokenized text (may be "" while a multi-byte character is incomplete).
        token_ids: The token ids, in order.
        first_token_index: 0-based position of the first token among all generated tokens: the next chunk starts
            at `first_token_index + len(token_ids)` when nothing was lost or duplicated.
    """

    text: str
    token_ids: tuple[int, ...]
    first_token_index: int

    @classmethod
    def from_proto(cls, message: common_pb2.TokenChunk) -> TokenChunk:
        return cls(message.text, tuple(message.token_ids), message.first_token_index)


@dataclass(frozen=True)
class Usage:
    """Token counts from the engine's tokenizer (prompt after the chat template)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_proto(cls, message: common_pb2.Usage) -> Usage:
        return cls(message.prompt_tokens, message.completion_tokens, message.total_tokens)


@dataclass(frozen=True)
class GenerationSummary:
    """Usage, latency and cost of a whole routed request (the last event of a successful stream).

    Attributes:
        usage: Token counts reported by the worker.
        finish_reason: stop, length or abort.
        served_by: The pair that produced the tokens (differs from the decision after a router retry).
        ttft_ms: TTFT seen by the router, in ms from request receipt.
        e2e_latency_ms: End-to-end latency seen by the router, in ms.
        estimated_cost_usd: Cost estimated at routing time, in USD.
        actual_cost_usd: Cost from the actual token counts, in USD.
        attempts: Worker calls made (1 without retries).
        served_by_endpoint: The worker (host:port) that produced the tokens: one replica of `served_by`.
    """

    usage: Usage
    finish_reason: FinishReason
    served_by: Pair | None
    ttft_ms: float
    e2e_latency_ms: float
    estimated_cost_usd: float
    actual_cost_usd: float
    attempts: int
    served_by_endpoint: str = ""

    @classmethod
    def from_proto(cls, message: router_pb2.GenerationSummary) -> GenerationSummary:
        return cls(
            usage=Usage.from_proto(message.usage),
            finish_reason=vocabulary.from_proto(FinishReason, message.finish_reason),
            served_by=Pair.from_proto(message.served_by) if message.HasField("served_by") else None,
            ttft_ms=message.ttft_ms,
            e2e_latency_ms=message.e2e_latency_ms,
            estimated_cost_usd=message.estimated_cost_usd,
            actual_cost_usd=message.actual_cost_usd,
            attempts=message.attempts,
            served_by_endpoint=message.served_by_endpoint,
        )


GenerateEvent = RouteDecision | TokenChunk | GenerationSummary
"""One event of a Generate stream: the decision (first, once), token chunks, then the summary (last, once)."""


def event_from_proto(message: router_pb2.GenerateResponse) -> GenerateEvent:
    """Converts one Generate stream message.

    Raises:
        ValueError: the message carries no event (a server bug or a newer event kind).
    """
    kind = message.WhichOneof("event")
    if kind == "decision":
        return RouteDecision.from_proto(message.decision)
    if kind == "chunk":
        return TokenChunk.from_proto(message.chunk)
    if kind == "summary":
        return GenerationSummary.from_proto(message.summary)
    raise ValueError(f"Generate stream message without a known event: {kind!r}")


@dataclass(frozen=True)
class Completion:
    """A finished generation: the decision, the whole text, the chunks and the summary."""

    decision: RouteDecision
    text: str
    chunks: tuple[TokenChunk, ...]
    summary: GenerationSummary

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(token for chunk in self.chunks for token in chunk.token_ids)


@dataclass(frozen=True)
class ProfilesDocument:
    """The profile document a router uses.

    Attributes:
        document_json: The document as JSON (schema: `core/profiles.py`).
        version: Its version, assigned by the store on publish.
        source: redis or static_file.
        loaded_at: When the router loaded it (UTC), None if not reported.
    """

    document_json: str
    version: int
    source: ProfileSource
    loaded_at: datetime | None

    @classmethod
    def from_proto(cls, message: router_pb2.GetProfilesResponse) -> ProfilesDocument:
        return cls(
            document_json=message.document_json,
            version=message.version,
            source=vocabulary.from_proto(ProfileSource, message.source),
            loaded_at=message.loaded_at.ToDatetime() if message.HasField("loaded_at") else None,
        )


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating a profile document: `errors` name the path of each offending field."""

    valid: bool
    errors: tuple[str, ...] = field(default_factory=tuple)


Prompt = str | list[ChatMessage] | tuple[ChatMessage, ...]
"""The input of Route / Generate: a raw prompt, or a chat conversation (oldest message first)."""


def fill_input(message: router_pb2.RouteRequest | router_pb2.GenerateRequest, prompt: Prompt) -> None:
    """Sets the `input` oneof of a Route or Generate request from a raw prompt or chat messages."""
    if isinstance(prompt, str):
        message.prompt = prompt
    else:
        message.chat.CopyFrom(common_pb2.Conversation(messages=[m.to_proto() for m in prompt]))
