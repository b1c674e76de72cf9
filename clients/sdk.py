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

Batches (`client.batches`: create, get, watch, results, cancel): see `clients.batches`.

Retries and deadlines: see `clients.channel`. When the router is down: `fallback=StaticFallback(...)`
(`clients.fallback`).
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import grpc

from clients.admin import AsyncProfilesAdmin, ProfilesAdmin
from clients.batches import AsyncBatches, Batches
from clients.channel import DEFAULT_RPC_TIMEOUT_S, channel_options, generate_timeout_s, route_timeout_s
from clients.credentials import TlsOptions, aio_channel, sync_channel
from clients.fallback import FallbackCall, OutageLog, StaticFallback
from clients.messages import Completion, Prompt, Requirements, RouteDecision, Sampling, fill_input
from clients.streams import AsyncGenerationStream, GenerationStream
from core.errors import from_rpc_error
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2_grpc


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


class AsyncQuantmeshClient:
    """Async client of one router (`grpc.aio`); owns its channel.

    Args:
        address: Router host:port.
        requirements: Default requirements for calls that pass none.
        rpc_timeout_s: Deadline of `route` and admin calls, in s.
        max_attempts: Attempts per retryable call, 1-5 (see `service_config`).
        extra_channel_options: More gRPC channel arguments (appended; later ones win).
        token: Bearer token sent on every call (`authorization` metadata), for a router with caller auth on.
        tls: TLS (and client certificate) options, for a router with TLS on; None: plaintext. The fallback worker's
            channel uses the same options.
        fallback: Where `generate` goes when the router is unavailable before the first token
            (`clients.fallback`); None: nowhere (the UnavailableError is raised).
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
        fallback: StaticFallback | None = None,
    ) -> None:
        self.address = address
        self.requirements = requirements or Requirements()
        self.fallback = fallback
        self._rpc_timeout_s = rpc_timeout_s
        self._options = [*channel_options(max_attempts), *extra_channel_options]
        self._tls = tls
        self._channel = aio_channel(address, self._options, token=token, tls=tls)
        self._stub = router_pb2_grpc.RouterServiceStub(self._channel)
        self._outage = OutageLog()
        self._fallback_channel: grpc.aio.Channel | None = None
        self.profiles = AsyncProfilesAdmin(self._channel, rpc_timeout_s)
        self.batches = AsyncBatches(self._channel, rpc_timeout_s)

    def _fallback_worker(self) -> worker_pb2_grpc.InferenceWorkerServiceStub:
        """The fallback worker's stub; its channel opens on the first fallback."""
        assert self.fallback is not None
        if self._fallback_channel is None:
            self._fallback_channel = aio_channel(self.fallback.address, self._options, tls=self._tls)
        return worker_pb2_grpc.InferenceWorkerServiceStub(self._fallback_channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channels; calls in flight are cancelled."""
        await self._channel.close()
        if self._fallback_channel is not None:
            await self._fallback_channel.close()

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

        The call's deadline is `requirements.latency_budget_ms`, or `timeout_s` (s) when smaller; a fallback call
        gets what is left of it. Errors surface while iterating (see `AsyncGenerationStream`).
        """
        requirements = requirements or self.requirements
        request = _generate_request(prompt, requirements, sampling, request_id)
        timeout = generate_timeout_s(requirements, timeout_s)
        fallback = FallbackCall(self.fallback, self._outage, request, timeout) if self.fallback else None
        return AsyncGenerationStream(self._stub.Generate(request, timeout=timeout), fallback, self._fallback_worker)

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
        fallback: StaticFallback | None = None,
    ) -> None:
        self.address = address
        self.requirements = requirements or Requirements()
        self.fallback = fallback
        self._rpc_timeout_s = rpc_timeout_s
        self._options = [*channel_options(max_attempts), *extra_channel_options]
        self._tls = tls
        self._channel = sync_channel(address, self._options, token=token, tls=tls)
        self._stub = router_pb2_grpc.RouterServiceStub(self._channel)
        self._outage = OutageLog()
        self._fallback_channel: grpc.Channel | None = None
        self.profiles = ProfilesAdmin(self._channel, rpc_timeout_s)
        self.batches = Batches(self._channel, rpc_timeout_s)

    def _fallback_worker(self) -> worker_pb2_grpc.InferenceWorkerServiceStub:
        assert self.fallback is not None
        if self._fallback_channel is None:
            self._fallback_channel = sync_channel(self.fallback.address, self._options, tls=self._tls)
        return worker_pb2_grpc.InferenceWorkerServiceStub(self._fallback_channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channels; calls in flight are cancelled."""
        self._channel.close()
        if self._fallback_channel is not None:
            self._fallback_channel.close()

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
        timeout = generate_timeout_s(requirements, timeout_s)
        fallback = FallbackCall(self.fallback, self._outage, request, timeout) if self.fallback else None
        return GenerationStream(self._stub.Generate(request, timeout=timeout), fallback, self._fallback_worker)

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
