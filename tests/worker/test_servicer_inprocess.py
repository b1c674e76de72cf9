"""The worker's servicer in this process, over real loopback gRPC, with a scripted engine at the engine seam
(`tests.fixtures.fake_engine`): streaming, completion, cancellation, deadlines, engine failures and admission, each
in milliseconds. The same paths against real vLLM are in `test_worker_vllm.py`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.worker.engine import EngineDeadError, EngineRequestError
from services.worker.server import WorkerServer, create_server
from services.worker.settings import WorkerSettings
from tests.fixtures.fake_engine import MAX_MODEL_LEN, ScriptedEngine
from tests.fixtures.waiting import await_until

SERVICE = "quantmesh.worker.v1.InferenceWorkerService"


@dataclass
class InProcessWorker:
    engine: ScriptedEngine
    stub: worker_pb2_grpc.InferenceWorkerServiceStub
    health: health_pb2_grpc.HealthStub

    async def status(self) -> int:
        return (await self.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)).status


async def _start(engine: ScriptedEngine) -> tuple[WorkerServer, grpc.aio.Channel]:
    settings = WorkerSettings(model="scripted", served_model_name="scripted-7b", quantization="awq",
                              quantize_weights=False, golden_check=False, max_model_len=MAX_MODEL_LEN,
                              health_poll_interval_s=0.02, log_json=False)
    server, port = await create_server(settings, engine=engine)
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture
async def worker() -> AsyncIterator[InProcessWorker]:
    engine = ScriptedEngine()
    server, channel = await _start(engine)
    running = InProcessWorker(engine, worker_pb2_grpc.InferenceWorkerServiceStub(channel),
                              health_pb2_grpc.HealthStub(channel))
    await await_until(lambda: _has_status(running, health_pb2.HealthCheckResponse.SERVING), 5.0,
                      message="the in-process worker did not become SERVING")
    yield running
    await channel.close()
    await server.stop(0)


async def _has_status(worker: InProcessWorker, status: int) -> bool:
    return await worker.status() == status


def _request(prompt: str = "two plus two is", max_output_tokens: int = 5, **fields) -> worker_pb2.GenerateRequest:
    return worker_pb2.GenerateRequest(prompt=prompt, max_output_tokens=max_output_tokens, **fields)


async def test_every_token_is_streamed_in_order_then_the_usage(worker: InProcessWorker) -> None:
    responses = [r async for r in worker.stub.Generate(_request(request_id="r-1"), timeout=5)]
    chunks = [r.chunk for r in responses[:-1]]
    assert all(r.HasField("chunk") for r in responses[:-1]) and responses[-1].HasField("complete")
    assert [i for chunk in chunks for i in chunk.token_ids] == [0, 1, 2, 3, 4]
    assert [chunk.first_token_index for chunk in chunks] == [0, 1, 2, 3, 4]
    assert "".join(chunk.text for chunk in chunks) == "t0 t1 t2 t3 t4 "
    complete = responses[-1].complete
    assert (complete.usage.prompt_tokens, complete.usage.completion_tokens, complete.usage.total_tokens) == (4, 5, 9)
    assert complete.finish_reason == common_pb2.FINISH_REASON_LENGTH and complete.request_id == "r-1"
    assert complete.served_by == common_pb2.ModelQuantizationPair(model_id="scripted-7b",
                                                                  quantization=common_pb2.QUANTIZATION_AWQ)
    assert 0 < complete.ttft_ms <= complete.e2e_latency_ms
    assert worker.engine.aborted == [] and worker.engine.running == set()


async def test_a_cancelled_call_aborts_its_engine_request(worker: InProcessWorker) -> None:
    worker.engine.hold.clear()
    call = worker.stub.Generate(_request(request_id="cancel-me"), timeout=5)
    await await_until(lambda: "cancel-me" in worker.engine.running, 5.0, message="request never reached the engine")
    call.cancel()
    await await_until(lambda: worker.engine.aborted == ["cancel-me"], 5.0, message="engine request not aborted")
    await await_until(lambda: not worker.engine.running, 5.0, message="engine request still running")
    worker.engine.hold.set()


async def test_a_passed_deadline_is_deadline_exceeded_and_aborts(worker: InProcessWorker) -> None:
    worker.engine.hold.clear()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in worker.stub.Generate(_request(request_id="late"), timeout=0.2):
            pass
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await await_until(lambda: worker.engine.aborted == ["late"], 5.0, message="engine request not aborted")
    worker.engine.hold.set()


@pytest.mark.parametrize(("failure", "code", "message"), [
    (EngineRequestError("out of blocks"), grpc.StatusCode.UNAVAILABLE, "out of blocks"),
    (ValueError("token id out of range"), grpc.StatusCode.INVALID_ARGUMENT, "prompt rejected by the engine"),
])
async def test_engine_request_failures_map_to_status(worker: InProcessWorker, failure: Exception,
                                                     code: grpc.StatusCode, message: str) -> None:
    worker.engine.fail_after_tokens, worker.engine.failure = 2, failure
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for response in worker.stub.Generate(_request(request_id="fails"), timeout=5):
            received.append(response)
    assert info.value.code() is code and message in info.value.details()
    assert [r.chunk.token_ids[0] for r in received] == [0, 1]  # what was generated before the failure arrived
    assert worker.engine.aborted == ["fails"] and await worker.status() == health_pb2.HealthCheckResponse.SERVING


async def test_a_dead_engine_is_unavailable_and_turns_health_not_serving(worker: InProcessWorker) -> None:
    worker.engine.fail_after_tokens, worker.engine.failure = 1, EngineDeadError("executor exited")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in worker.stub.Generate(_request(), timeout=5):
            pass
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE and "engine unavailable" in info.value.details()
    await await_until(lambda: _has_status(worker, health_pb2.HealthCheckResponse.NOT_SERVING), 5.0,
                      message="health still SERVING after the engine died")


@pytest.mark.parametrize(("request_message", "field"), [
    (_request(sampling=common_pb2.SamplingParams(temperature=9.0)), "sampling.temperature"),
    (_request(max_output_tokens=MAX_MODEL_LEN), "max_output_tokens"),
    (_request(prompt="word " * MAX_MODEL_LEN, max_output_tokens=8), "prompt is"),
])
async def test_bad_requests_never_reach_the_engine(worker: InProcessWorker, request_message, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in worker.stub.Generate(request_message, timeout=5):
            pass
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith(field)
    assert worker.engine.requests == []


async def test_a_request_id_already_in_flight_is_refused(worker: InProcessWorker) -> None:
    worker.engine.hold.clear()
    first = worker.stub.Generate(_request(request_id="dup"), timeout=5)
    await await_until(lambda: "dup" in worker.engine.running, 5.0, message="first request never reached the engine")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in worker.stub.Generate(_request(request_id="dup"), timeout=5):
            pass
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "already in flight" in info.value.details()
    worker.engine.hold.set()
    assert [r async for r in first][-1].complete.usage.completion_tokens == 5


async def test_not_serving_until_the_engine_has_started() -> None:
    engine = ScriptedEngine()
    engine.start = asyncio.Event().wait  # type: ignore[method-assign]  # never finishes starting
    server, channel = await _start(engine)
    try:
        stub = worker_pb2_grpc.InferenceWorkerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(_request(), timeout=5):
                pass
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE and "not serving" in info.value.details()
        assert engine.requests == []
    finally:
        await channel.close()
        await server.stop(0)
