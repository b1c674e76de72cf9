"""The engine interface the InferenceWorker servicer talks to, and the plain data it exchanges.

Two implementations: `services.worker.vllm_engine.VllmEngine` (vLLM's `AsyncLLM`, the real one) and
`services.worker.synthetic_engine.SyntheticEngine` (deterministic tokens, no model: benchmarks of the router/gRPC
path only). The servicer never imports vLLM: everything it needs is here.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from core.vocabulary import FinishReason


class EngineDeadError(RuntimeError):
    """The engine stopped or crashed; no request can be served (the servicer answers UNAVAILABLE)."""


class EngineNotReadyError(RuntimeError):
    """The engine has not finished starting (the servicer answers UNAVAILABLE)."""


class EngineRequestError(RuntimeError):
    """The engine failed one request with a retryable request-level error (the servicer answers UNAVAILABLE)."""


@dataclass(frozen=True)
class SamplingSpec:
    """Sampling parameters; None means the engine default (see `quantmesh.common.v1.SamplingParams`)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


GREEDY = SamplingSpec(temperature=0.0)


@dataclass
class GenerationDelta:
    """Tokens produced since the previous delta of the same request.

    The stream of an `Engine.generate` call merges every delta that became available while the consumer was busy
    into the next one it takes, so a slow consumer gets fewer, larger deltas and never falls behind.

    Attributes:
        token_ids: The new token ids, in order (may be empty on the final delta).
        text: Their detokenized text (may be empty while a multi-byte character is incomplete).
        finished: True on the last delta.
        finish_reason: Set on the last delta.
        prompt_tokens: Number of prompt tokens the engine processed.
        completion_tokens: Tokens generated so far, counted by the engine (on the last delta: the total).
    """

    token_ids: list[int]
    text: str
    finished: bool = False
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class EngineLoad:
    """Load of the engine, from its own scheduler counters.

    Attributes:
        running_requests: Requests being decoded.
        waiting_requests: Requests queued for admission.
        kv_cache_usage_fraction: Fraction of KV-cache blocks in use, in [0, 1].
        output_tokens_per_s: Generated tokens per second over the last few seconds.
        version: Grows at every change of the counters (see `Engine.wait_for_load_change`).
    """

    running_requests: int = 0
    waiting_requests: int = 0
    kv_cache_usage_fraction: float = 0.0
    output_tokens_per_s: float = 0.0
    version: int = 0


@dataclass(frozen=True)
class EngineModelInfo:
    """What the engine serves and on which hardware.

    Attributes:
        engine_version: For example "vllm 0.32.0".
        model_path: Where the weights were loaded from.
        tokenizer: Tokenizer name or path.
        max_model_len: Maximum prompt + output tokens per request.
        kv_cache_capacity_tokens: KV-cache capacity in tokens (blocks x block size).
        max_num_seqs: Maximum concurrently running requests.
        device_index: GPU index, -1 on a CPU.
        device_name: GPU name, or "cpu".
        memory_total_bytes: Device memory (on a CPU: host memory reserved for the engine: KV cache + weights).
        memory_used_bytes: Device memory used (NVML on a GPU; resident memory of the engine processes on a CPU).
    """

    engine_version: str
    model_path: str
    tokenizer: str
    max_model_len: int
    kv_cache_capacity_tokens: int
    max_num_seqs: int
    device_index: int = -1
    device_name: str = "cpu"
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0


@dataclass(frozen=True)
class ChatTurn:
    """One chat message: role is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """A validated request, already tokenized.

    Attributes:
        request_id: Engine request id (unique among in-flight requests).
        prompt_token_ids: The prompt (chat template applied).
        max_output_tokens: At least 1.
        sampling: Sampling parameters.
    """

    request_id: str
    prompt_token_ids: Sequence[int]
    max_output_tokens: int
    sampling: SamplingSpec = field(default_factory=SamplingSpec)


class Engine(abc.ABC):
    """One inference engine serving one model.

    Lifecycle: `start()` (slow: loads the model), then any number of `generate` calls, then `close()`.
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Starts the engine; returns when it accepts requests.

        Raises:
            RuntimeError: the engine could not start (bad model, not enough memory).
        """

    @abc.abstractmethod
    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Token ids of a raw prompt, with the special tokens the model adds (BOS).

        Raises:
            EngineNotReadyError: before `start()` returned.
        """

    @abc.abstractmethod
    def tokenize_chat(self, messages: Sequence[ChatTurn]) -> list[int]:
        """Token ids of a conversation rendered with the model's chat template, ending with the assistant header.

        Raises:
            EngineNotReadyError: before `start()` returned.
            ValueError: the model has no chat template or the template rejects the conversation.
        """

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Streams the generation; the last delta has `finished=True`.

        Closing or cancelling the iterator early aborts the engine request (its KV-cache blocks are freed).

        Raises:
            EngineNotReadyError: before `start()` returned.
            EngineDeadError: the engine died.
            ValueError: the engine rejected the request (for example the prompt is too long).
        """

    @abc.abstractmethod
    async def abort(self, request_id: str) -> None:
        """Aborts a request if it is still running (no-op otherwise)."""

    @abc.abstractmethod
    def load(self) -> EngineLoad:
        """The latest load snapshot (cheap; no I/O)."""

    @abc.abstractmethod
    async def wait_for_load_change(self, since_version: int, timeout_s: float) -> None:
        """Returns when the load changed after the snapshot numbered `since_version` (at once if it already did),
        or after `timeout_s`, whichever comes first."""

    @abc.abstractmethod
    def model_info(self) -> EngineModelInfo:
        """Describes the served model and hardware.

        Raises:
            EngineNotReadyError: before `start()` returned.
        """

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Returns if the engine can serve.

        Raises:
            EngineNotReadyError: not started yet.
            EngineDeadError: the engine died.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stops the engine and its processes (in-flight requests end with FinishReason.ABORT or an error)."""
