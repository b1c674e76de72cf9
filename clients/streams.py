"""The streams `generate` returns: iterate for every event (decision, token chunks, summary); what has arrived so
far stays readable (`decision`, `received_chunks`, `text`, `summary`), also after a failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from clients.fallback import FallbackCall, applies
from clients.messages import (
    Completion,
    GenerateEvent,
    GenerationSummary,
    RouteDecision,
    TokenChunk,
    event_from_proto,
)
from core.errors import CancelledError, QuantmeshError, from_rpc_error
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2_grpc


class _StreamState:
    """What a Generate stream has delivered so far (shared by the async and sync streams)."""

    def __init__(self) -> None:
        self.decision: RouteDecision | None = None
        self.chunks: list[TokenChunk] = []
        self.summary: GenerationSummary | None = None

    def record(self, event: GenerateEvent) -> None:
        if isinstance(event, RouteDecision):
            self.decision = event
        elif isinstance(event, TokenChunk):
            self.chunks.append(event)
        else:
            self.summary = event

    @property
    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)

    def completion(self) -> Completion:
        if self.decision is None or self.summary is None:
            raise QuantmeshError(
                "Generate stream ended without "
                + ("a decision" if self.decision is None else "a summary")
                + " (server bug or a cancelled stream)",
                code=grpc.StatusCode.INTERNAL,
            )
        return Completion(self.decision, self.text, tuple(self.chunks), self.summary)


class _ReceivedSoFar:
    """What a Generate stream has received so far: shared by the async and sync streams."""

    _state: _StreamState

    @property
    def decision(self) -> RouteDecision | None:
        return self._state.decision

    @property
    def received_chunks(self) -> tuple[TokenChunk, ...]:
        """The token chunks received so far."""
        return tuple(self._state.chunks)

    @property
    def text(self) -> str:
        return self._state.text

    @property
    def summary(self) -> GenerationSummary | None:
        return self._state.summary


class _Fallible:
    """The fallback side shared by both streams: which failures go to the static fallback, and the events of the
    router's messages (the first one tells the client's outage log that the router answers)."""

    _state: _StreamState
    _fallback: FallbackCall | None
    served_by_fallback: bool

    def _from_router(self, message: router_pb2.GenerateResponse) -> GenerateEvent:
        if self._fallback is not None and self._state.decision is None:
            self._fallback.outage.router_answered()
        return event_from_proto(message)

    def _falls_back(self, failure: QuantmeshError) -> FallbackCall:
        """The fallback call for `failure`, or raises it (no fallback configured, not UNAVAILABLE, or a token was
        already received)."""
        if self._fallback is None or not applies(failure, len(self._state.chunks)):
            raise failure
        self._fallback.outage.router_failed(failure, self._fallback.fallback)
        self.served_by_fallback = True
        return self._fallback

    def _fallback_decision(self, fallback: FallbackCall, failure: QuantmeshError) -> RouteDecision | None:
        """The synthesized decision when the router sent none (the stream still starts with a decision)."""
        if self._state.decision is not None:
            return None
        decision = fallback.decision(failure)
        self._state.record(decision)
        return decision


class AsyncGenerationStream(_ReceivedSoFar, _Fallible):
    """One in-flight `RouterService.Generate` call; `async for` yields `GenerateEvent`s.

    Events arrive in order: one `RouteDecision`, then `TokenChunk`s, then one `GenerationSummary`. As they arrive
    they are also kept on the stream (`decision`, `received_chunks`, `text`, `summary`). Leaving the `async for` early or
    calling `cancel()` cancels the RPC: the router cancels its worker call and the worker aborts the engine request.
    With a static fallback (`clients.fallback`), an UNAVAILABLE router before the first token sends the request to
    the fallback worker instead, and `served_by_fallback` turns True.

    Raises (while iterating):
        QuantmeshError subclasses: `DeadlineExceededError` (budget spent), `ResourceExhaustedError`,
        `UnavailableError`, `InvalidArgumentError`, `FailedPreconditionError`, `core.errors.CancelledError`
        (after `cancel()`; a cancelled asyncio task still sees `asyncio.CancelledError`).
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall, fallback: FallbackCall | None = None,
                 fallback_worker: Callable[[], worker_pb2_grpc.InferenceWorkerServiceStub] | None = None) -> None:
        self._call = call
        self._state = _StreamState()
        self._cancel_requested = False
        self._fallback = fallback
        self._fallback_worker = fallback_worker
        self.served_by_fallback = False

    def cancel(self) -> None:
        """Cancels the call (no-op once it has finished); iterating it then raises `CancelledError`."""
        self._cancel_requested = True
        self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[GenerateEvent]:
        try:
            # aclosing: leaving the caller's loop early closes the relay at once, and with it the call.
            async with contextlib.aclosing(self._relay(self._from_router)) as events:
                async for event in events:
                    yield event
            return
        except grpc.RpcError as exc:
            failure = from_rpc_error(exc)
        fallback = self._falls_back(failure)
        decision = self._fallback_decision(fallback, failure)
        if decision is not None:
            yield decision
        assert self._fallback_worker is not None
        self._call = self._fallback_worker().Generate(fallback.worker_request(), timeout=fallback.timeout_s())
        try:
            async with contextlib.aclosing(self._relay(fallback.event)) as events:
                async for event in events:
                    yield event
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def _relay(self, to_event: Callable[[Any], GenerateEvent]) -> AsyncIterator[GenerateEvent]:
        """The current call's messages as events, kept on the stream; the call is cancelled if left early."""
        try:
            async for message in self._call:
                event = to_event(message)
                self._state.record(event)
                yield event
        except asyncio.CancelledError:
            # grpc.aio reports a local cancel() as asyncio.CancelledError; only a cancelled *task* should look so.
            if self._cancel_requested:
                raise CancelledError("cancelled by the client") from None
            raise
        finally:
            if not self._call.done():
                self._call.cancel()

    async def chunks(self) -> AsyncIterator[TokenChunk]:
        """Yields only the token chunks (the decision and summary are still kept on the stream)."""
        async for event in self:
            if isinstance(event, TokenChunk):
                yield event

    async def collect(self) -> Completion:
        """Reads the stream to its end and returns the whole completion."""
        async for _ in self:
            pass
        return self._state.completion()


class GenerationStream(_ReceivedSoFar, _Fallible):
    """The sync twin of `AsyncGenerationStream`: a plain iterator of `GenerateEvent`s (with the same fallback).

    Ctrl-C (KeyboardInterrupt) while iterating, breaking out of the loop, or `cancel()` cancels the RPC, and with
    it the worker's engine request.
    """

    def __init__(self, call: Any, fallback: FallbackCall | None = None,  # call: a grpc._channel._MultiThreadedRendezvous
                 fallback_worker: Callable[[], worker_pb2_grpc.InferenceWorkerServiceStub] | None = None) -> None:
        self._call = call
        self._state = _StreamState()
        self._fallback = fallback
        self._fallback_worker = fallback_worker
        self.served_by_fallback = False

    def cancel(self) -> None:
        """Cancels the call (no-op once it has finished); iterating it then raises `CancelledError`."""
        self._call.cancel()

    def __iter__(self) -> Iterator[GenerateEvent]:
        try:
            yield from self._relay(self._from_router)
            return
        except grpc.RpcError as exc:
            failure = from_rpc_error(exc)
        fallback = self._falls_back(failure)
        decision = self._fallback_decision(fallback, failure)
        if decision is not None:
            yield decision
        assert self._fallback_worker is not None
        self._call = self._fallback_worker().Generate(fallback.worker_request(), timeout=fallback.timeout_s())
        try:
            yield from self._relay(fallback.event)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def _relay(self, to_event: Callable[[Any], GenerateEvent]) -> Iterator[GenerateEvent]:
        try:
            for message in self._call:
                event = to_event(message)
                self._state.record(event)
                yield event
        finally:  # also on KeyboardInterrupt and GeneratorExit
            if not self._call.done():
                self._call.cancel()

    def chunks(self) -> Iterator[TokenChunk]:
        """Yields only the token chunks (the decision and summary are still kept on the stream)."""
        for event in self:
            if isinstance(event, TokenChunk):
                yield event

    def collect(self) -> Completion:
        """Reads the stream to its end and returns the whole completion."""
        for _ in self:
            pass
        return self._state.completion()
