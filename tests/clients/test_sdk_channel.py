"""The SDK's channel behaviour against a real gRPC server on 127.0.0.1 whose handlers follow a script.

What is tested here is the client side (service-config retries, deadlines, typed errors with trailing metadata,
cancellation), which needs failures on demand: a real router cannot be made to fail its first two Route calls with
UNAVAILABLE. The SDK against the real router is tested in test_sdk_mesh.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest

from clients.channel import service_config
from clients.messages import GenerationSummary, Requirements, RouteDecision, TokenChunk
from clients.sdk import AsyncQuantmeshClient, QuantmeshClient
from core.errors import (
    CancelledError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2, router_pb2_grpc

PAIR = common_pb2.ModelQuantizationPair(model_id="tiny", quantization=common_pb2.QUANTIZATION_NONE)


@dataclass
class Script:
    """Per-RPC queues of actions; an empty queue means "succeed"."""

    route: list[str] = field(default_factory=list)
    generate: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    get_profiles: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    time_remaining_s: list[float] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def next(self, rpc: str) -> str:
        self.calls[rpc] = self.calls.get(rpc, 0) + 1
        queue = getattr(self, rpc)
        return queue.pop(0) if queue else "ok"


def _fail(context: grpc.ServicerContext, action: str) -> None:
    if action == "unavailable":
        context.abort(grpc.StatusCode.UNAVAILABLE, "no healthy worker")
    if action == "invalid":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "requirements.latency_budget_ms: must be at least 1")
    if action == "exhausted":
        context.set_trailing_metadata((("retry-after-ms", "250"),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "admission refused: queue past the deadline")


class ScriptedRouter(router_pb2_grpc.RouterServiceServicer, router_pb2_grpc.RouterAdminServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    def Route(self, request, context):
        _fail(context, self.script.next("route"))
        return router_pb2.RouteResponse(decision=router_pb2.RouteDecision(request_id=request.request_id,
                                                                          outcome=router_pb2.ROUTE_OUTCOME_ROUTED,
                                                                          chosen=PAIR))

    def Generate(self, request, context):
        action = self.script.next("generate")
        self.script.time_remaining_s.append(context.time_remaining())
        if action == "endless":  # it never ends by itself: termination means the client cancelled
            context.add_callback(self.script.cancelled.set)
        _fail(context, action)
        yield router_pb2.GenerateResponse(decision=router_pb2.RouteDecision(outcome=router_pb2.ROUTE_OUTCOME_ROUTED,
                                                                            chosen=PAIR))
        yield router_pb2.GenerateResponse(chunk=common_pb2.TokenChunk(text="Pa", token_ids=[1], first_token_index=0))
        if action == "fail_after_first_chunk":
            context.abort(grpc.StatusCode.UNAVAILABLE, "worker failed after 1 token(s) were relayed")
        if action == "endless":
            while context.is_active():
                yield router_pb2.GenerateResponse(chunk=common_pb2.TokenChunk(text=".", token_ids=[2]))
                time.sleep(0.01)  # deliberate: the endless stream's pace
            return
        yield router_pb2.GenerateResponse(chunk=common_pb2.TokenChunk(text="ris", token_ids=[2], first_token_index=1))
        yield router_pb2.GenerateResponse(summary=router_pb2.GenerationSummary(
            usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5), served_by=PAIR,
            finish_reason=common_pb2.FINISH_REASON_STOP, attempts=1))

    def GetProfiles(self, request, context):
        _fail(context, self.script.next("get_profiles"))
        return router_pb2.GetProfilesResponse(document_json="{}", version=4)

    def PublishProfiles(self, request, context):
        _fail(context, self.script.next("publish"))
        return router_pb2.PublishProfilesResponse(version=5)


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = ScriptedRouter(script)
    router_pb2_grpc.add_RouterServiceServicer_to_server(servicer, server)
    router_pb2_grpc.add_RouterAdminServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", script
    server.stop(None)


def test_route_is_retried_on_unavailable_by_the_service_config(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.route = ["unavailable", "unavailable"]
    with QuantmeshClient(address) as client:
        decision = client.route("hello", request_id="r-7")
    assert decision.request_id == "r-7" and script.calls["route"] == 3


def test_route_retries_are_bounded_by_max_attempts(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.route = ["unavailable"] * 5
    with QuantmeshClient(address, max_attempts=2) as client, pytest.raises(UnavailableError, match="no healthy"):
        client.route("hello")
    assert script.calls["route"] == 2


def test_invalid_argument_is_not_retried_and_keeps_the_server_message(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.route = ["invalid"]
    with QuantmeshClient(address) as client, pytest.raises(InvalidArgumentError) as info:
        client.route("hello")
    assert info.value.message == "requirements.latency_budget_ms: must be at least 1"
    assert script.calls["route"] == 1


def test_resource_exhausted_carries_the_retry_after_hint_and_is_not_retried(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.generate = ["exhausted"]
    with QuantmeshClient(address) as client, pytest.raises(ResourceExhaustedError) as info:
        client.complete("hello")
    assert info.value.retry_after_s == pytest.approx(0.25)
    assert script.calls["generate"] == 1


def test_generate_is_retried_before_any_response(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.generate = ["unavailable"]
    with QuantmeshClient(address) as client:
        completion = client.complete("hello")
    assert completion.text == "Paris" and completion.token_ids == (1, 2)
    assert script.calls["generate"] == 2


def test_generate_is_never_retried_after_its_first_message(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.generate = ["fail_after_first_chunk"]
    with QuantmeshClient(address) as client:
        stream = client.generate("hello")
        with pytest.raises(UnavailableError, match="after 1 token"):
            for _ in stream:
                pass
    assert script.calls["generate"] == 1
    assert stream.decision is not None and stream.text == "Pa" and stream.summary is None


def test_generate_deadline_is_the_budget_or_the_smaller_explicit_timeout(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    with QuantmeshClient(address) as client:
        client.complete("hello", Requirements(latency_budget_ms=800))
        client.complete("hello", Requirements(latency_budget_ms=800), timeout_s=0.3)
        client.complete("hello", Requirements(latency_budget_ms=800), timeout_s=5.0)
    budget, explicit, larger = script.time_remaining_s
    slack_s = 0.01  # the server's clock reading of the same deadline
    assert 0.5 < budget <= 0.8 + slack_s
    assert 0.1 < explicit <= 0.3 + slack_s
    assert 0.5 < larger <= 0.8 + slack_s


def test_publish_is_not_retried_but_get_profiles_is(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.publish = ["unavailable"]
    script.get_profiles = ["unavailable"]
    with QuantmeshClient(address) as client:
        with pytest.raises(UnavailableError):
            client.profiles.publish("{}")
        assert client.profiles.get().version == 4
    assert script.calls["publish"] == 1 and script.calls["get_profiles"] == 2


async def test_async_stream_yields_typed_events_in_order(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.route = ["unavailable"]
    async with AsyncQuantmeshClient(address) as client:
        decision = await client.route("hello")
        stream = client.generate("hello")
        kinds = [type(event) async for event in stream]
    assert isinstance(decision, RouteDecision) and script.calls["route"] == 2
    assert kinds == [RouteDecision, TokenChunk, TokenChunk, GenerationSummary]
    assert stream.text == "Paris" and stream.summary is not None and stream.summary.usage.total_tokens == 5


async def test_async_stream_left_early_cancels_the_call(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.generate = ["endless", "endless"]
    async with AsyncQuantmeshClient(address) as client:
        stream = client.generate("hello", Requirements(latency_budget_ms=10_000))
        async for event in stream.chunks():
            assert event.text
            break
        assert await asyncio.to_thread(script.cancelled.wait, 5.0), "leaving the loop did not cancel the call"
        script.cancelled.clear()
        stream = client.generate("hello", Requirements(latency_budget_ms=10_000))
        with pytest.raises(CancelledError, match="cancelled by the client"):
            async for _ in stream:
                stream.cancel()
        assert await asyncio.to_thread(script.cancelled.wait, 5.0), "cancel() did not cancel the call"


def test_sync_stream_left_early_cancels_the_call(scripted: tuple[str, Script]) -> None:
    address, script = scripted
    script.generate = ["endless"]
    with QuantmeshClient(address) as client:
        for _ in client.generate("hello", Requirements(latency_budget_ms=10_000)).chunks():
            break
        assert script.cancelled.wait(5.0), "leaving the loop did not cancel the call"


def test_service_config_declares_retries_for_reads_and_generate_only() -> None:
    config = service_config(3)
    retried = {(n["service"].rsplit(".", 1)[1], n["method"]) for m in config["methodConfig"] for n in m["name"]}
    assert retried == {("RouterService", "Route"), ("RouterService", "Generate"),
                       ("RouterAdminService", "GetProfiles"), ("RouterAdminService", "ValidateProfiles")}
    assert all(m["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"] for m in config["methodConfig"])
    assert service_config(1) == {"methodConfig": []}
    with pytest.raises(ValueError, match="1-5"):
        service_config(6)
