"""Drives one InferenceWorker over gRPC: health, model info and timed streamed generations.

Errors surface as `WorkerError` with the worker's address, the RPC, the gRPC status and the worker's message, so that
the profiler can say which worker failed and why (for example "worker 127.0.0.1:50070: unreachable (UNAVAILABLE:
failed to connect to all addresses)").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tools.profiler.eval_set import ChatTurn
from tools.profiler.stats import RequestTrace

_ROLES = {
    "system": common_pb2.CHAT_ROLE_SYSTEM,
    "user": common_pb2.CHAT_ROLE_USER,
    "assistant": common_pb2.CHAT_ROLE_ASSISTANT,
}
# Statuses meaning the worker itself failed (as opposed to refusing one input): they abort the profile.
_UNREACHABLE = grpc.StatusCode.UNAVAILABLE


class WorkerError(Exception):
    """A worker RPC failed.

    Attributes:
        address: The worker's host:port.
        code: The gRPC status, or None for a protocol violation (lost or duplicated tokens, no completion).
    """

    def __init__(self, address: str, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(f"worker {address}: {message}")
        self.address = address
        self.code = code


class PromptInput(Protocol):
    """A raw prompt or a chat (exactly one is set), as `EvalItem` and `LoadPrompt` carry them."""

    @property
    def prompt(self) -> str | None: ...

    @property
    def messages(self) -> Sequence[ChatTurn] | None: ...


@dataclass(frozen=True)
class Generation:
    """One completed generation: its client-side timings, the text and the worker's own figures."""

    trace: RequestTrace
    text: str
    finish_reason: int
    worker_ttft_ms: float
    worker_e2e_latency_ms: float


def _describe(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


class WorkerDriver:
    """A channel to one worker.

    Args:
        address: host:port of the InferenceWorker.
        timeout_s: Deadline of each RPC, s.
    """

    def __init__(self, address: str, timeout_s: float) -> None:
        self.address = address
        self._timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = worker_pb2_grpc.InferenceWorkerServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def check_serving(self, connect_timeout_s: float) -> None:
        """Raises `WorkerError` unless the worker answers its health check with SERVING within the timeout."""
        try:
            response = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=connect_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (_UNREACHABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise WorkerError(self.address, f"unreachable ({_describe(exc)})", exc.code()) from None
            raise WorkerError(self.address, f"health check failed ({_describe(exc)})", exc.code()) from None
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise WorkerError(self.address, f"not serving (health {status})")

    async def model_info(self) -> worker_pb2.ModelInfo:
        """The worker's GetModelInfo. Raises `WorkerError`."""
        try:
            response = await self._stub.GetModelInfo(worker_pb2.GetModelInfoRequest(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise WorkerError(self.address, f"GetModelInfo failed ({_describe(exc)})", exc.code()) from None
        return response.info

    async def generate(self, request: PromptInput, *, max_output_tokens: int, temperature: float = 0.0,
                       stop: Sequence[str] = (), seed: int | None = None) -> Generation:
        """Streams one generation and times every chunk on the client.

        Raises:
            WorkerError: the RPC failed (its status in `code`, INVALID_ARGUMENT when the worker refuses the input),
                or the stream broke the protocol (a token lost or duplicated, no completion message).
        """
        message = worker_pb2.GenerateRequest(
            request_id=f"profile-{uuid.uuid4().hex}",
            max_output_tokens=max_output_tokens,
            sampling=common_pb2.SamplingParams(temperature=temperature, stop=list(stop), seed=seed),
        )
        if request.prompt is not None:
            message.prompt = request.prompt
        else:
            message.chat.messages.extend(
                common_pb2.ChatMessage(role=_ROLES[turn.role], content=turn.content) for turn in request.messages or ()
            )
        arrivals: list[float] = []
        counts: list[int] = []
        texts: list[str] = []
        complete: worker_pb2.GenerationComplete | None = None
        sent_at = time.monotonic()
        try:
            async for response in self._stub.Generate(message, timeout=self._timeout_s):
                now = time.monotonic()
                if response.WhichOneof("event") == "chunk":
                    chunk = response.chunk
                    if chunk.first_token_index != sum(counts):
                        raise WorkerError(self.address, f"Generate: chunk starts at token {chunk.first_token_index}"
                                                        f", expected {sum(counts)} (tokens lost or duplicated)")
                    arrivals.append(now)
                    counts.append(len(chunk.token_ids))
                    texts.append(chunk.text)
                else:
                    complete = response.complete
                    completed_at = now
        except grpc.aio.AioRpcError as exc:
            raise WorkerError(self.address, f"Generate failed ({_describe(exc)})", exc.code()) from None
        if complete is None:
            raise WorkerError(self.address, "Generate: the stream ended without a completion message")
        try:
            trace = RequestTrace(sent_at, tuple(arrivals), tuple(counts), completed_at,
                                 complete.usage.prompt_tokens, complete.usage.completion_tokens)
        except ValueError as exc:
            raise WorkerError(self.address, f"Generate: inconsistent stream ({exc})") from None
        return Generation(trace, "".join(texts), complete.finish_reason, complete.ttft_ms, complete.e2e_latency_ms)
