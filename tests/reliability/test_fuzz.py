"""Bad input: property-based fuzzing (hypothesis) of every RPC's request fields and of profile documents.

Against real processes (router, classifier, one synthetic worker, redis-server): every answer must be OK or a defined
status (INVALID_ARGUMENT, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED,
NOT_FOUND), never
INTERNAL or UNKNOWN, never a hang, and every process must still be alive at the end. Examples are bounded
(`EXAMPLES` per RPC; 10x with QUANTMESH_RELIABILITY_LONG=1) so that the suite stays fast.
Writes fuzz.json into the session's results directory (`tests.fixtures.results`): sent = examples,
succeeded = OK answers, rejected by status, lost = undefined answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import batch_pb2, batch_pb2_grpc, router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.fixtures.reliability import LocalMesh, environment_flag
from tests.reliability.accounting import ScenarioResult
from tests.reliability.meshes import synthetic_worker
from tests.router.helpers import document_dict, pair_dict

EXAMPLES = 400 if environment_flag("QUANTMESH_RELIABILITY_LONG") else 40
CALL_TIMEOUT_S = 3.0
DEFINED = frozenset({
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND,
})
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.data_too_large])

# Protobuf strings must be valid UTF-8: no lone surrogates (the client library refuses them before sending).
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
uint32 = st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1))
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
doubles = st.floats(allow_nan=True, allow_infinity=True)
enum_values = st.integers(-(2**31), 2**31 - 1)
request_ids = st.one_of(texts, st.text(min_size=120, max_size=200))


@st.composite
def conversations(draw: st.DrawFn) -> common_pb2.Conversation:
    messages = draw(st.lists(st.tuples(st.one_of(st.integers(0, 4), enum_values), texts), max_size=4))
    return common_pb2.Conversation(messages=[common_pb2.ChatMessage(role=role, content=content)
                                             for role, content in messages])


@st.composite
def sampling_params(draw: st.DrawFn) -> common_pb2.SamplingParams:
    params = common_pb2.SamplingParams(stop=draw(st.lists(texts, max_size=10)))
    for name, strategy in (("temperature", floats), ("top_p", floats), ("top_k", st.integers(-(2**31), 2**31 - 1)),
                           ("seed", st.integers(-(2**63), 2**63 - 1)), ("presence_penalty", floats),
                           ("frequency_penalty", floats)):
        if draw(st.booleans()):
            setattr(params, name, draw(strategy))
    return params


@st.composite
def requirements(draw: st.DrawFn) -> router_pb2.RoutingRequirements:
    return router_pb2.RoutingRequirements(max_output_tokens=draw(uint32), latency_budget_ms=draw(uint32),
                                          required_accuracy=draw(st.one_of(st.floats(0, 1), doubles)),
                                          mode=draw(st.one_of(st.integers(0, 2), enum_values)))


def with_input(message: Any, draw: st.DrawFn) -> Any:
    choice = draw(st.sampled_from(["prompt", "chat", "none", "huge"]))
    if choice == "prompt":
        message.prompt = draw(texts)
    elif choice == "chat":
        message.chat.CopyFrom(draw(conversations()))
    elif choice == "huge":  # over the router's 64 KiB prompt limit, under gRPC's 4 MiB message limit
        message.prompt = "word " * draw(st.integers(13_200, 20_000))
    return message


@st.composite
def router_requests(draw: st.DrawFn, kind: type) -> Any:
    message = with_input(kind(request_id=draw(request_ids)), draw)
    if draw(st.booleans()):
        message.requirements.CopyFrom(draw(requirements()))
    if kind is router_pb2.GenerateRequest and draw(st.booleans()):
        message.sampling.CopyFrom(draw(sampling_params()))
    return message


@st.composite
def worker_requests(draw: st.DrawFn) -> worker_pb2.GenerateRequest:
    message = with_input(worker_pb2.GenerateRequest(request_id=draw(request_ids), max_output_tokens=draw(uint32)),
                         draw)
    if draw(st.booleans()):
        message.sampling.CopyFrom(draw(sampling_params()))
    return message


@st.composite
def batch_items(draw: st.DrawFn) -> batch_pb2.BatchItem:
    item = with_input(batch_pb2.BatchItem(custom_id=draw(st.one_of(texts, st.sampled_from(["a", "b"]))),
                                          max_output_tokens=draw(uint32),
                                          required_accuracy=draw(st.one_of(st.floats(0, 1), doubles))), draw)
    if draw(st.booleans()):
        item.sampling.CopyFrom(draw(sampling_params()))
    return item


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)


@st.composite
def profile_documents(draw: st.DrawFn) -> str:
    """A valid document with some fields replaced, dropped or added, or arbitrary JSON, or not JSON at all."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "text"]))
    if kind == "text":
        return draw(texts)
    if kind == "json":
        return json.dumps(draw(json_values))
    document = document_dict(pair_dict("fuzz-a", "127.0.0.1:1"), pair_dict("fuzz-b", "127.0.0.1:2",
                                                                           quantization="awq"))
    targets = [document, *document["pairs"], document["pairs"][0]["accuracy_by_tier"]]  # before any mutation
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(targets))
        key = draw(st.one_of(st.sampled_from(sorted(target)), texts))
        action = draw(st.sampled_from(["replace", "drop"]))
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return json.dumps(document)  # NaN / Infinity included when drawn: the router must refuse them


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    worker = synthetic_worker("syn-fuzz", "syn-fuzz", accuracy=(0.9, 0.8, 0.7), price_per_hour_usd=1.0)
    async with LocalMesh(tmp_path_factory.mktemp("fuzz-mesh"), [worker]) as running:
        yield running


@pytest.fixture(scope="module")
def fuzz_result(mesh: LocalMesh):
    result = ScenarioResult("fuzz")
    yield result
    result.figures["dead_processes"] = mesh.dead_processes()
    result.write()


def call(result: ScenarioResult, rpc: str, invoke: Callable[[], Any]) -> None:
    """Makes one call, counts its status, and fails on an undefined one."""
    result.sent += 1
    try:
        response = invoke()
        if hasattr(response, "__iter__") and not hasattr(response, "ListFields"):
            for _ in response:  # a stream: read it to its end (or its status)
                pass
        code = grpc.StatusCode.OK
        details = ""
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
    if code is grpc.StatusCode.OK:
        result.succeeded += 1
    elif code in DEFINED:
        result.rejected[code.name] += 1
    else:
        result.lost += 1
        result.undefined.append(f"{rpc}: {code.name}: {details}")
    result.figures.setdefault("examples_by_rpc", {}).setdefault(rpc, 0)
    result.figures["examples_by_rpc"][rpc] += 1
    assert code in DEFINED, f"{rpc} answered {code.name}: {details}"


@pytest.fixture(scope="module")
def channels(mesh: LocalMesh):
    opened = {name: grpc.insecure_channel(address) for name, address in (
        ("router", mesh.router_address), ("worker", mesh.worker_addresses["syn-fuzz"]),
        ("classifier", mesh.classifier_address))}
    yield opened
    for channel in opened.values():
        channel.close()


@FUZZ_SETTINGS
@given(request=router_requests(router_pb2.RouteRequest))
def test_router_route(channels, fuzz_result, request) -> None:
    stub = router_pb2_grpc.RouterServiceStub(channels["router"])
    call(fuzz_result, "router.Route", lambda: stub.Route(request, timeout=CALL_TIMEOUT_S))


@FUZZ_SETTINGS
@given(request=router_requests(router_pb2.GenerateRequest))
def test_router_generate(channels, fuzz_result, request) -> None:
    stub = router_pb2_grpc.RouterServiceStub(channels["router"])
    call(fuzz_result, "router.Generate", lambda: stub.Generate(request, timeout=CALL_TIMEOUT_S))


@FUZZ_SETTINGS
@given(document=profile_documents(), expected_version=st.one_of(st.just(0), st.integers(0, 2**64 - 1)),
       publish=st.booleans())
def test_router_admin_profiles(channels, fuzz_result, document, expected_version, publish) -> None:
    stub = router_pb2_grpc.RouterAdminServiceStub(channels["router"])
    call(fuzz_result, "router.ValidateProfiles",
         lambda: stub.ValidateProfiles(router_pb2.ValidateProfilesRequest(document_json=document),
                                       timeout=CALL_TIMEOUT_S))
    if publish:  # valid documents are really published: the router must keep answering whatever they say
        call(fuzz_result, "router.PublishProfiles", lambda: stub.PublishProfiles(
            router_pb2.PublishProfilesRequest(document_json=document, expected_version=expected_version),
            timeout=CALL_TIMEOUT_S))
    call(fuzz_result, "router.GetProfiles",
         lambda: stub.GetProfiles(router_pb2.GetProfilesRequest(), timeout=CALL_TIMEOUT_S))


@FUZZ_SETTINGS
@given(request=worker_requests())
def test_worker_generate(channels, fuzz_result, request) -> None:
    stub = worker_pb2_grpc.InferenceWorkerServiceStub(channels["worker"])
    call(fuzz_result, "worker.Generate", lambda: stub.Generate(request, timeout=CALL_TIMEOUT_S))


@FUZZ_SETTINGS
@given(interval_ms=uint32)
def test_worker_load_and_info(channels, fuzz_result, interval_ms) -> None:
    stub = worker_pb2_grpc.InferenceWorkerServiceStub(channels["worker"])
    call(fuzz_result, "worker.GetLoad", lambda: stub.GetLoad(worker_pb2.GetLoadRequest(), timeout=CALL_TIMEOUT_S))
    call(fuzz_result, "worker.GetModelInfo",
         lambda: stub.GetModelInfo(worker_pb2.GetModelInfoRequest(), timeout=CALL_TIMEOUT_S))

    def first_report() -> Any:
        stream = stub.WatchLoad(worker_pb2.WatchLoadRequest(interval_ms=interval_ms), timeout=CALL_TIMEOUT_S)
        try:
            return next(stream)
        finally:
            stream.cancel()

    call(fuzz_result, "worker.WatchLoad", first_report)


@FUZZ_SETTINGS
@given(request_id=request_ids, text=st.one_of(texts, st.integers(33_000, 40_000).map(lambda n: "é " * n)),
       stream_items=st.lists(st.tuples(request_ids, texts), max_size=5))
def test_classifier(channels, fuzz_result, request_id, text, stream_items) -> None:
    stub = classifier_pb2_grpc.ClassifierServiceStub(channels["classifier"])
    call(fuzz_result, "classifier.Classify", lambda: stub.Classify(
        classifier_pb2.ClassifyRequest(request_id=request_id, text=text), timeout=CALL_TIMEOUT_S))
    requests = [classifier_pb2.ClassifyStreamRequest(request_id=rid, text=item) for rid, item in stream_items]
    call(fuzz_result, "classifier.ClassifyStream", lambda: stub.ClassifyStream(iter(requests),
                                                                                timeout=CALL_TIMEOUT_S))


@FUZZ_SETTINGS
@given(items=st.lists(batch_items(), max_size=4), latency_budget_ms=uint32,
       batch_id=st.one_of(texts, st.text("0123456789abcdef", min_size=32, max_size=32)),
       page_size=uint32, page_token=texts)
def test_router_batches(channels, fuzz_result, items, latency_budget_ms, batch_id, page_size, page_token) -> None:
    stub = batch_pb2_grpc.BatchServiceStub(channels["router"])
    created: list[str] = []

    def create() -> batch_pb2.CreateBatchResponse:
        response = stub.CreateBatch(batch_pb2.CreateBatchRequest(items=items, latency_budget_ms=latency_budget_ms),
                                    timeout=CALL_TIMEOUT_S)
        created.append(response.batch.batch_id)
        return response

    call(fuzz_result, "router.CreateBatch", create)
    # A queued batch (no consumer runs here) is read, cancelled, then watched to its end; else the drawn id.
    target = created[0] if created else batch_id
    call(fuzz_result, "router.GetBatch", lambda: stub.GetBatch(
        batch_pb2.GetBatchRequest(batch_id=target, page_size=page_size, page_token=page_token),
        timeout=CALL_TIMEOUT_S))
    call(fuzz_result, "router.CancelBatch", lambda: stub.CancelBatch(
        batch_pb2.CancelBatchRequest(batch_id=target), timeout=CALL_TIMEOUT_S))
    call(fuzz_result, "router.WatchBatch", lambda: stub.WatchBatch(batch_pb2.WatchBatchRequest(batch_id=target),
                                                                   timeout=CALL_TIMEOUT_S))


def test_every_process_survived(mesh: LocalMesh, fuzz_result) -> None:
    assert not mesh.dead_processes()
    assert fuzz_result.lost == 0, fuzz_result.undefined[:5]
