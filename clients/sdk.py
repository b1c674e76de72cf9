"""The quantmesh Python SDK: async and sync clients of the Router (`quantmesh.router.v1`).

Both clients own their gRPC channel: use them as (async) context managers or call `close()`. Results are the typed
dataclasses of `clients.messages`; failures raise the typed exceptions of `core.errors` (one per status code,
carrying the server's message).

Example (async)::

    async with AsyncQuantmeshClient("127.0.0.1:50051") as client:
        stream = client.generate("What is 2 + 2?", Requirements(max_output_tokens=32, latency_budget_ms=2000))
        async for event in stream:
            if isinstance(event, TokenChunk):
                print(event.text, end="", flush=True)
        print(stream.decision.chosen, stream.summary.actual_cost_usd)

Example (sync)::

    with QuantmeshClient("127.0.0.1:50051") as client:
        decision = client.route("Classify: 'my card was declined'")
        for chunk in client.generate("Hello").chunks():
            print(chunk.text, end="")

Deadlines: the gRPC deadline of `generate` is the request's latency budget (`latency_budget_ms`), or the explicit
`timeout_s` when that is smaller; the router reads the deadline and applies the smaller of the two
(`RouteDecision.effective_budget_ms`). `route` is a dry run: its deadline is `timeout_s` (default: the larger of
`DEFAULT_RPC_TIMEOUT_S` and the budget plus 1 s), not the budget, so that a decision is returned even for a budget no
pair can meet.

Retries are declared in the gRPC service config of the channel (`service_config()`), not hand-written:
- Route and the admin reads (GetProfiles, ValidateProfiles) retry on UNAVAILABLE only, with exponential backoff.
- Generate retries on UNAVAILABLE only as long as nothing was received: gRPC commits a call (no more retries) as
  soon as the server's response headers arrive, and the router sends them with the decision, its first message.
  So a Generate is never retried after its decision or a token chunk, and tokens are never duplicated or dropped;
  retrying another pair after a worker failure is the router's job (before the first token only).
- PublishProfiles (a write) is never retried by the channel.
RESOURCE_EXHAUSTED is not retried automatically: `ResourceExhaustedError.retry_after_s` carries the server's hint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Self

import grpc

from clients.credentials import TlsOptions, aio_channel, sync_channel
from clients.messages import (
    Completion,
    GenerateEvent,
    GenerationSummary,
    ProfilesDocument,
    Prompt,
    Requirements,
    RouteDecision,
    Sampling,
    TokenChunk,
    ValidationResult,
    event_from_proto,
    fill_input,
)
from core.errors import CancelledError, QuantmeshError, from_rpc_error
from quantmesh.router.v1 import router_pb2, router_pb2_grpc

ROUTER_SERVICE = "quantmesh.router.v1.RouterService"
ADMIN_SERVICE = "quantmesh.router.v1.RouterAdminService"
DEFAULT_RPC_TIMEOUT_S = 10.0
"""Deadline of `route` and the admin RPCs, in s, when the caller gives none."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message the SDK sends or accepts, in bytes (profile documents can exceed gRPC's 4 MiB default)."""


def service_config(max_attempts: int = 3) -> dict[str, Any]:
    """The gRPC service config the SDK's channels use (retry policies per method; see the module docstring).

    Args:
        max_attempts: Attempts per call including the first, 1-5 (gRPC caps it at 5); 1 disables retries.

    Returns:
        A dict in the gRPC service config JSON shape (https://github.com/grpc/grpc/blob/master/doc/service_config.md).

    Raises:
        ValueError: `max_attempts` is outside 1-5.
    """
    if not 1 <= max_attempts <= 5:
        raise ValueError(f"max_attempts must be in 1-5, got {max_attempts}")
    if max_attempts == 1:
        return {"methodConfig": []}
    retry = {
        "maxAttempts": max_attempts,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    reads = [
        {"service": ROUTER_SERVICE, "method": "Route"},
        {"service": ADMIN_SERVICE, "method": "GetProfiles"},
        {"service": ADMIN_SERVICE, "method": "ValidateProfiles"},
    ]
    return {
        "methodConfig": [
            {"name": reads, "retryPolicy": retry},
            # Committed once the decision (first message) arrives: never retried after it.
            {"name": [{"service": ROUTER_SERVICE, "method": "Generate"}], "retryPolicy": retry},
        ]
    }


def channel_options(max_attempts: int = 3) -> list[tuple[str, Any]]:
    """Channel arguments: the service config with its retry policies, message limits and keepalive."""
    return [
        ("grpc.service_config", json.dumps(service_config(max_attempts))),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]


def generate_timeout_s(requirements: Requirements, timeout_s: float | None) -> float:
    """The deadline of a Generate call, in s: the latency budget, or `timeout_s` when that is smaller."""
    budget_s = requirements.latency_budget_ms / 1000.0
    return budget_s if timeout_s is None else min(budget_s, timeout_s)


def route_timeout_s(request: router_pb2.RouteRequest, timeout_s: float | None, rpc_timeout_s: float) -> float:
    """The deadline of a Route call, in s: `timeout_s` when given, else the larger of `rpc_timeout_s` and the
    budget plus 1 s (a dry run should see the whole budget: the router caps the budget at the call's deadline)."""
    if timeout_s is not None:
        return timeout_s
    return max(rpc_timeout_s, request.requirements.latency_budget_ms / 1000.0 + 1.0)


def _route_request(prompt: Prompt, requirements: Requirements, request_id: str) -> router_pb2.RouteRequest:
    request = router_pb2.RouteRequest(request_id=request_id, requirements=requirements.to_proto())
    fill_input(request, prompt)
    return request


def _generate_request(
    prompt: Prompt, requirements: Requirements, sampling: Sampling | None, request_id: str
) -> router_pb2.GenerateRequest:
    request = router_pb2.GenerateRequest(request_id=request_id, requirements=requirements.to_proto())
    if sampling is not None:
        request.sampling.CopyFrom(sampling.to_proto())
    fill_input(request, prompt)
    return request


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


class AsyncProfilesAdmin:
    """`RouterAdminService` over an `AsyncQuantmeshClient`'s channel (profile document get / validate / publish)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = router_pb2_grpc.RouterAdminServiceStub(channel)
        self._timeout_s = timeout_s

    async def get(self) -> ProfilesDocument:
        """The profile document the router uses. Raises `QuantmeshError` subclasses (UNAVAILABLE: unreachable)."""
        try:
            response = await self._stub.GetProfiles(router_pb2.GetProfilesRequest(), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ProfilesDocument.from_proto(response)

    async def validate(self, document_json: str) -> ValidationResult:
        """Validates a document without publishing it; problems come back in `errors` (not as an exception)."""
        try:
            response = await self._stub.ValidateProfiles(
                router_pb2.ValidateProfilesRequest(document_json=document_json), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ValidationResult(response.valid, tuple(response.errors))

    async def publish(self, document_json: str, expected_version: int = 0) -> int:
        """Validates then publishes `document_json` as a new version; returns the version assigned.

        Args:
            document_json: The profile document (its version field is assigned by the store).
            expected_version: Publish only if the current version equals this; 0 publishes regardless.

        Raises:
            InvalidArgumentError: invalid document (nothing changed; the message lists the fields).
            AbortedError: `expected_version` is stale.
            UnavailableError: the profile store cannot be reached (nothing changed).
        """
        try:
            response = await self._stub.PublishProfiles(
                router_pb2.PublishProfilesRequest(document_json=document_json, expected_version=expected_version),
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return int(response.version)


class ProfilesAdmin:
    """The sync twin of `AsyncProfilesAdmin`."""

    def __init__(self, channel: grpc.Channel, timeout_s: float) -> None:
        self._stub = router_pb2_grpc.RouterAdminServiceStub(channel)
        self._timeout_s = timeout_s

    def get(self) -> ProfilesDocument:
        """See `AsyncProfilesAdmin.get`."""
        try:
            return ProfilesDocument.from_proto(
                self._stub.GetProfiles(router_pb2.GetProfilesRequest(), timeout=self._timeout_s)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def validate(self, document_json: str) -> ValidationResult:
        """See `AsyncProfilesAdmin.validate`."""
        try:
            response = self._stub.ValidateProfiles(
                router_pb2.ValidateProfilesRequest(document_json=document_json), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ValidationResult(response.valid, tuple(response.errors))

    def publish(self, document_json: str, expected_version: int = 0) -> int:
        """See `AsyncProfilesAdmin.publish`."""
        try:
            response = self._stub.PublishProfiles(
                router_pb2.PublishProfilesRequest(document_json=document_json, expected_version=expected_version),
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return int(response.version)


class AsyncQuantmeshClient:
    """Async client of one router (`grpc.aio`); owns its channel.

    Args:
        address: Router host:port.
        requirements: Default requirements for calls that pass none.
        rpc_timeout_s: Deadline of `route` and admin calls, in s.
        max_attempts: Attempts per retryable call, 1-5 (see `service_config`).
        extra_channel_options: More gRPC channel arguments (appended; later ones win).
        token: Bearer token sent on every call (`authorization` metadata), for a router with caller auth on.
        tls: TLS (and client certificate) options, for a router with TLS on; None: plaintext.
    """

    def __init__(
        self,
        address: str,
        *,
        requirements: Requirements | None = None,
        rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S,
        max_attempts: int = 3,
        extra_channel_options: Sequence[tuple[str, Any]] = (),
        token: str | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        self.address = address
        self.requirements = requirements or Requirements()
        self._rpc_timeout_s = rpc_timeout_s
        self._channel = aio_channel(address, [*channel_options(max_attempts), *extra_channel_options], token=token,
                                    tls=tls)
        self._stub = router_pb2_grpc.RouterServiceStub(self._channel)
        self.profiles = AsyncProfilesAdmin(self._channel, rpc_timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def route(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> RouteDecision:
        """The routing decision alone (a dry run): every candidate with its scores and rejection reasons.

        Args:
            prompt: A raw prompt or chat messages.
            requirements: Budget, accuracy, mode; the client's default when None.
            request_id: At most 128 characters; the router generates one when "".
            timeout_s: Deadline in s (default: see `route_timeout_s`; not the budget, see the module doc).

        Raises:
            InvalidArgumentError: bad input (the message names the field).
            FailedPreconditionError: the router has no profiles.
            UnavailableError: the router cannot be reached (after the service-config retries).
            DeadlineExceededError: no answer within `timeout_s`.
        """
        request = _route_request(prompt, requirements or self.requirements, request_id)
        try:
            response = await self._stub.Route(request, timeout=route_timeout_s(request, timeout_s, self._rpc_timeout_s))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return RouteDecision.from_proto(response.decision)

    def generate(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        sampling: Sampling | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> AsyncGenerationStream:
        """Starts a routed generation; iterate the returned stream with `async for`.

        The call's deadline is `requirements.latency_budget_ms`, or `timeout_s` (s) when smaller.
        Errors surface while iterating (see `AsyncGenerationStream`).
        """
        requirements = requirements or self.requirements
        request = _generate_request(prompt, requirements, sampling, request_id)
        return AsyncGenerationStream(self._stub.Generate(request, timeout=generate_timeout_s(requirements, timeout_s)))

    async def complete(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        sampling: Sampling | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> Completion:
        """`generate` read to its end: the decision, the whole text and the summary. Same errors as `generate`."""
        stream = self.generate(prompt, requirements, sampling=sampling, request_id=request_id, timeout_s=timeout_s)
        return await stream.collect()


class QuantmeshClient:
    """Sync client of one router (`grpc` blocking API); owns its channel. Same arguments as `AsyncQuantmeshClient`."""

    def __init__(
        self,
        address: str,
        *,
        requirements: Requirements | None = None,
        rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S,
        max_attempts: int = 3,
        extra_channel_options: Sequence[tuple[str, Any]] = (),
        token: str | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        self.address = address
        self.requirements = requirements or Requirements()
        self._rpc_timeout_s = rpc_timeout_s
        self._channel = sync_channel(address, [*channel_options(max_attempts), *extra_channel_options], token=token,
                                     tls=tls)
        self._stub = router_pb2_grpc.RouterServiceStub(self._channel)
        self.profiles = ProfilesAdmin(self._channel, rpc_timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def route(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> RouteDecision:
        """See `AsyncQuantmeshClient.route`."""
        request = _route_request(prompt, requirements or self.requirements, request_id)
        try:
            response = self._stub.Route(request, timeout=route_timeout_s(request, timeout_s, self._rpc_timeout_s))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return RouteDecision.from_proto(response.decision)

    def generate(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        sampling: Sampling | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> GenerationStream:
        """See `AsyncQuantmeshClient.generate`; iterate the returned stream with `for`."""
        requirements = requirements or self.requirements
        request = _generate_request(prompt, requirements, sampling, request_id)
        return GenerationStream(self._stub.Generate(request, timeout=generate_timeout_s(requirements, timeout_s)))

    def complete(
        self,
        prompt: Prompt,
        requirements: Requirements | None = None,
        *,
        sampling: Sampling | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> Completion:
        """See `AsyncQuantmeshClient.complete`."""
        return self.generate(prompt, requirements, sampling=sampling, request_id=request_id, timeout_s=timeout_s).collect()
