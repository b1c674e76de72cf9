"""The OpenAI chat-completions bodies the gateway reads and writes (pydantic), with quantmesh's extension fields.

Request fields follow OpenAI's `POST /v1/chat/completions` reference (https://platform.openai.com/docs/api-reference/
chat/create) for what quantmesh can honour; any other field is refused (400 naming it) rather than ignored, so a
caller never believes a setting took effect when it did not. Extension fields (also settable as `x-quantmesh-*`
headers, the body winning): `latency_budget_ms`, `min_accuracy`, `mode`. Responses carry the route decision and its
outcome in a `quantmesh` object (`QuantmeshExtension`), which OpenAI's SDKs keep as an extra attribute.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AUTO_MODEL = "auto"
"""The `model` that lets the router choose; any other id pins one model-quantization pair."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Body):
    """One part of a message's content; only text parts are accepted."""

    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    """One message. `developer` is OpenAI's newer name for `system` and is served as one; tool and function
    messages are refused (the mesh runs no tools)."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = Field(None, max_length=64, description="Accepted and not used.")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionRequest(_Body):
    """The body of `POST /v1/chat/completions`.

    Token counts are tokens of the serving model; `max_tokens` (or its newer name `max_completion_tokens`) defaults
    to the gateway's `default_max_tokens`. `latency_budget_ms` (ms, end to end) becomes the router's budget and the
    gRPC deadline of the call; `min_accuracy` (in [0, 1]) is the router's `required_accuracy` for this query's tier.
    """

    model: str = Field(..., min_length=1, max_length=300, description='"auto" (routed) or a pair id from /v1/models.')
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1, le=1_000_000, description="vLLM's extension: -1 disables it.")
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: Literal[1] | None = Field(None, description="Only one choice per request.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256, description="Accepted and logged as the end user's id.")
    latency_budget_ms: int | None = Field(None, ge=1, le=3_600_000)
    min_accuracy: float | None = Field(None, ge=0, le=1)
    mode: Literal["cheapest", "interactive", "batch"] | None = None

    def output_token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RejectionView(BaseModel):
    reason: str
    detail: str


class CandidateView(BaseModel):
    """How the router scored one pair (times in ms, cost in USD)."""

    pair: str
    eligible: bool
    rejections: list[RejectionView]
    utility: float
    expected_accuracy: float
    predicted_ttft_ms: float
    predicted_latency_ms: float
    estimated_cost_usd: float


class DecisionView(BaseModel):
    """The router's decision: the chosen pair, why, and every candidate best first."""

    request_id: str
    outcome: str
    pair: str | None
    reason: str
    tier: str
    intent: str
    classifier_degraded: bool
    profiles_version: int
    effective_budget_ms: float
    candidates: list[CandidateView]


class SummaryView(BaseModel):
    """What serving the request measured (ms from the router's receipt; cost in USD from the worker's counts)."""

    served_by: str
    ttft_ms: float
    e2e_latency_ms: float
    output_tokens_per_s: float
    estimated_cost_usd: float
    cost_usd: float
    attempts: int


class QuantmeshExtension(BaseModel):
    """The `quantmesh` object of a completion or chunk: the decision (first and last chunk), the summary (last)."""

    decision: DecisionView
    summary: SummaryView | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None


class ChatCompletion(BaseModel):
    """A non-streamed answer (`object: chat.completion`); `model` is the pair that served it."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    quantmesh: QuantmeshExtension


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One streamed event (`object: chat.completion.chunk`). With `stream_options.include_usage`, every chunk has
    `usage: null` except the last, whose `choices` is empty (OpenAI's convention)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    quantmesh: QuantmeshExtension | None = None


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`; `quantmesh` holds the pair's live state and profile figures."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "quantmesh"
    quantmesh: dict[str, float | int | bool | str] = Field(default_factory=dict)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
