"""The streams `generate` returns: iterate for every event (decision, token chunks, summary); what has arrived so
far stays readable (`decision`, `received_chunks`, `text`, `summary`), also after a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from clients.messages import (
    Completion,
    GenerateEvent,
    GenerationSummary,
    RouteDecision,
    TokenChunk,
    event_from_proto,
)
from core.errors import CancelledError, QuantmeshError, from_rpc_error


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


class AsyncGenerationStream(_ReceivedSoFar):
    """One in-flight `RouterService.Generate` call; `async for` yields `GenerateEvent`s.

    Events arrive in order: one `RouteDecision`, then `TokenChunk`s, then one `GenerationSummary`. As they arrive
    they are also kept on the stream (`decision`, `received_chunks`, `text`, `summary`). Leaving the `async for` early or
    calling `cancel()` cancels the RPC: the router cancels its worker call and the worker aborts the engine request.

    Raises (while iterating):
        QuantmeshError subclasses: `DeadlineExceededError` (budget spent), `ResourceExhaustedError`,
        `UnavailableError`, `InvalidArgumentError`, `FailedPreconditionError`, `core.errors.CancelledError`
        (after `cancel()`; a cancelled asyncio task still sees `asyncio.CancelledError`).
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        self._call = call
        self._state = _StreamState()
        self._cancel_requested = False

    def cancel(self) -> None:
        """Cancels the call (no-op once it has finished); iterating it then raises `CancelledError`."""
        self._cancel_requested = True
        self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[GenerateEvent]:
        try:
            async for message in self._call:
                event = event_from_proto(message)
                self._state.record(event)
                yield event
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
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


class GenerationStream(_ReceivedSoFar):
    """The sync twin of `AsyncGenerationStream`: a plain iterator of `GenerateEvent`s.

    Ctrl-C (KeyboardInterrupt) while iterating, breaking out of the loop, or `cancel()` cancels the RPC, and with
    it the worker's engine request.
    """

    def __init__(self, call: Any) -> None:  # a grpc._channel._MultiThreadedRendezvous
        self._call = call
        self._state = _StreamState()

    def cancel(self) -> None:
        """Cancels the call (no-op once it has finished); iterating it then raises `CancelledError`."""
        self._call.cancel()

    def __iter__(self) -> Iterator[GenerateEvent]:
        try:
            for message in self._call:
                event = event_from_proto(message)
                self._state.record(event)
                yield event
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
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
