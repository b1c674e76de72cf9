"""gRPC handlers of `quantmesh.worker.v1.InferenceWorkerService` over an `Engine`.

Statuses: INVALID_ARGUMENT for bad input (message names the field, see `core.requests`), UNAVAILABLE
while the engine starts, after a failed golden-prompt check or once the engine died; CANCELLED and
DEADLINE_EXCEEDED come from gRPC itself when the caller cancels or the deadline passes; in both cases the engine
request is aborted (its KV-cache blocks freed) before the handler returns.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import structlog
from opentelemetry import trace

from core.errors import InvalidArgumentError, UnavailableError
from core.requests import validate_prompt_length, validate_worker_request
from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.worker import conversions
from services.worker.admission import WorkerAdmission
from services.worker.engine import (
    Engine,
    EngineDeadError,
    EngineLoad,
    EngineNotReadyError,
    EngineRequestError,
    GenerationDelta,
    GenerationRequest,
)
from services.worker.prometheus_metrics import WorkerMetrics, abort_reason

log = structlog.get_logger(__name__)

WATCH_LOAD_INTERVAL_RANGE_MS = (50, 60_000)
# Load changes can come every engine step (a few ms); a watcher gets at most one change report per this gap.
MIN_CHANGE_REPORT_GAP_S = 0.02


def coalesce_window_s(streams_in_flight: int, max_chunks_per_s: float, min_window_s: float, max_window_s: float) -> float:
    """Seconds a stream under load waits after sending a chunk: its share of the worker's chunk budget
    (`streams_in_flight / max_chunks_per_s`), clamped to [`min_window_s`, `max_window_s`]."""
    return min(max_window_s, max(min_window_s, streams_in_flight / max_chunks_per_s))


@dataclass
class ServingState:
    """Whether the worker serves, and why not (shared by the servicer and the server's lifecycle task).

    Attributes:
        serving: The engine is up and the golden-prompt check passed (health SERVING).
        reason: Why it is not serving (starting, golden check failed, engine dead), for UNAVAILABLE messages.
    """

    serving: bool = False
    reason: str = "engine is starting"


class InferenceWorkerServicer(worker_pb2_grpc.InferenceWorkerServiceServicer):
    """Args: engine, state (see ServingState), the pair served, max_model_len, the default WatchLoad period, the
    event that wakes the engine monitor, and stream coalescing: with at least `coalesce_min_streams` streams in
    flight, each stream sends at most one chunk per window (tokens produced meanwhile are merged). The window is
    (streams in flight / `max_chunks_per_s`) s, clamped to [`coalesce_window_ms`, `coalesce_max_window_ms`], so the
    worker's message rate, and the CPU its gRPC writes take from the engine, stays bounded as streams are added."""

    def __init__(
        self,
        engine: Engine,
        state: ServingState,
        *,
        served_model_name: str,
        quantization: str,
        max_model_len: int,
        watch_load_interval_ms: int,
        engine_died: asyncio.Event,
        coalesce_window_ms: float = 0.0,
        coalesce_min_streams: int = 1,
        coalesce_max_window_ms: float = 100.0,
        max_chunks_per_s: float = 1200.0,
        admission: WorkerAdmission | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._state = state
        self._served_model_name = served_model_name
        self._quantization = quantization
        self._pair = conversions.to_pair(served_model_name, quantization)
        self._max_model_len = max_model_len
        self._watch_load_interval_ms = watch_load_interval_ms
        self._engine_died = engine_died
        self._coalesce_window_s = coalesce_window_ms / 1000.0
        self._coalesce_max_window_s = coalesce_max_window_ms / 1000.0
        self._max_chunks_per_s = max_chunks_per_s
        self._coalesce_min_streams = coalesce_min_streams if coalesce_window_ms > 0 else 1 << 30
        self._in_flight: set[str] = set()
        self._admission = admission or WorkerAdmission()
        self._metrics = metrics or WorkerMetrics(served_model_name, quantization)

    async def Generate(
        self, request: worker_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.GenerateResponse]:
        received_at = time.monotonic()
        engine_request = self._admit(request, context)
        request_id = engine_request.request_id
        self._in_flight.add(request_id)
        observed = self._metrics.request(received_at, len(engine_request.prompt_token_ids))
        stream = self._engine.generate(engine_request)
        last: GenerationDelta | None = None
        first_token_at: float | None = None
        next_index = 0
        try:
            async for delta in stream:
                if delta.token_ids:
                    token_at = time.monotonic()
                    first_token_at = first_token_at or token_at
                    observed.tokens(len(delta.token_ids), token_at)
                    chunk = common_pb2.TokenChunk(
                        text=delta.text, token_ids=delta.token_ids, first_token_index=next_index
                    )
                    next_index += len(delta.token_ids)
                    self._admission.on_tokens(request_id, len(delta.token_ids))
                    yield worker_pb2.GenerateResponse(chunk=chunk)
                    if len(self._in_flight) >= self._coalesce_min_streams:
                        await asyncio.sleep(self._coalesce_pause_s(request.max_output_tokens - next_index,
                                                                   len(delta.token_ids)))
                last = delta
            finished_at = time.monotonic()
        except (EngineDeadError, EngineNotReadyError) as exc:
            self._engine_died.set()
            raise UnavailableError(f"engine unavailable: {exc}") from exc
        except EngineRequestError as exc:
            raise UnavailableError(str(exc)) from exc
        except ValueError as exc:  # the engine's own validation
            raise InvalidArgumentError(f"prompt rejected by the engine: {exc}") from exc
        finally:
            interrupted_by = sys.exc_info()[1]  # cancellation / deadline / error: the abort's reason
            self._in_flight.discard(request_id)
            self._admission.release(request_id)
            await stream.aclose()  # early exit (cancel, deadline, error): aborts the engine request
            if last is None or not last.finished:
                await self._engine.abort(request_id)
                reason = abort_reason(interrupted_by, context.time_remaining())
                observed.aborted(reason)
                log.info("engine_request_aborted", request_id=request_id, reason=reason.value, tokens_sent=next_index)
        if last is None or not last.finished:
            raise UnavailableError(f"engine stream of {request_id} ended before completion")
        observed.completed(finished_at)
        yield worker_pb2.GenerateResponse(
            complete=self._completion(last, request_id, received_at, first_token_at or finished_at, finished_at)
        )

    def _admit(self, request: worker_pb2.GenerateRequest, context: grpc.aio.ServicerContext) -> GenerationRequest:
        """The engine request for a Generate call, once it is valid, fits the context and is admitted.

        Raises:
            InvalidArgumentError: a bad field (`core.requests`), a prompt too long for the context, or a request id
                already in flight.
            UnavailableError: the worker is not serving.
            ResourceExhaustedError: the load would make it miss its deadline (with `retry-after-ms`).
        """
        validate_worker_request(request, max_model_len=self._max_model_len)
        self._require_serving()
        prompt_token_ids = self._tokenize(request)
        validate_prompt_length(len(prompt_token_ids), request.max_output_tokens, max_model_len=self._max_model_len)
        request_id = request.request_id or uuid.uuid4().hex
        if request_id in self._in_flight:
            raise InvalidArgumentError(f"request_id {request_id!r} is already in flight")
        sampling = conversions.to_sampling_spec(request.sampling)
        self._admission.admit(request_id, request.max_output_tokens, context.time_remaining())
        return GenerationRequest(request_id, prompt_token_ids, request.max_output_tokens, sampling)

    def _coalesce_pause_s(self, tokens_left: int, chunk_tokens: int) -> float:
        """How long a stream under load waits after a chunk, s.

        Under load, letting the engine's collector merge tokens for a few ms gives fewer, larger messages, which
        keep the stream (and this process's CPU) up with the engine; TTFT is unaffected. A stream whose remaining
        tokens come in less than a window (at this chunk's rate) waits only until they are due, so its last chunk
        and usage are not held back.
        """
        window_s = coalesce_window_s(len(self._in_flight), self._max_chunks_per_s, self._coalesce_window_s,
                                     self._coalesce_max_window_s)
        return window_s * min(1.0, tokens_left / chunk_tokens)

    def _completion(self, last: GenerationDelta, request_id: str, received_at: float, first_token_at: float,
                    finished_at: float) -> worker_pb2.GenerationComplete:
        """The stream's last message (usage, finish reason, latencies in ms); also set on the server span."""
        usage = common_pb2.Usage(
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            total_tokens=last.prompt_tokens + last.completion_tokens,
        )
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({"quantmesh.request_id": request_id,
                                 "quantmesh.usage.prompt_tokens": usage.prompt_tokens,
                                 "quantmesh.usage.completion_tokens": usage.completion_tokens,
                                 "quantmesh.finish_reason": last.finish_reason.value if last.finish_reason else ""})
        return worker_pb2.GenerationComplete(
            usage=usage,
            finish_reason=conversions.to_finish_reason(last.finish_reason),
            ttft_ms=(first_token_at - received_at) * 1000.0,
            e2e_latency_ms=(finished_at - received_at) * 1000.0,
            served_by=self._pair,
            request_id=request_id,
        )

    def _require_serving(self) -> None:
        if not self._state.serving:
            raise UnavailableError(f"worker is not serving: {self._state.reason}")

    def _tokenize(self, request: worker_pb2.GenerateRequest) -> list[int]:
        try:
            if request.WhichOneof("input") == "prompt":
                return self._engine.tokenize_prompt(request.prompt)
            return self._engine.tokenize_chat(conversions.to_chat_turns(request.chat))
        except (EngineNotReadyError, EngineDeadError) as exc:
            raise UnavailableError(f"engine unavailable: {exc}") from exc
        except ValueError as exc:
            raise InvalidArgumentError(f"chat: {exc}") from exc

    async def GetLoad(
        self, request: worker_pb2.GetLoadRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.GetLoadResponse:
        return worker_pb2.GetLoadResponse(load=self._report())

    async def WatchLoad(
        self, request: worker_pb2.WatchLoadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.WatchLoadResponse]:
        interval_ms = request.interval_ms or self._watch_load_interval_ms
        low, high = WATCH_LOAD_INTERVAL_RANGE_MS
        if not low <= interval_ms <= high:
            raise InvalidArgumentError(f"interval_ms must be in [{low}, {high}], got {interval_ms}")
        while True:
            load = self._engine.load()
            yield worker_pb2.WatchLoadResponse(load=self._report(load))
            reported_at = time.monotonic()
            await self._engine.wait_for_load_change(load.version, interval_ms / 1000.0)
            gap = MIN_CHANGE_REPORT_GAP_S - (time.monotonic() - reported_at)
            if gap > 0:
                await asyncio.sleep(gap)

    def _report(self, load: EngineLoad | None = None) -> worker_pb2.LoadReport:
        return conversions.to_load_report(load or self._engine.load(), serving=self._state.serving)

    async def GetModelInfo(
        self, request: worker_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.GetModelInfoResponse:
        try:
            info = self._engine.model_info()
        except (EngineNotReadyError, EngineDeadError) as exc:
            raise UnavailableError(f"engine unavailable: {exc}") from exc
        return worker_pb2.GetModelInfoResponse(
            info=conversions.to_model_info(
                info, served_model_name=self._served_model_name, quantization_label=self._quantization
            )
        )
