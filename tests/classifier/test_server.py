"""The real classifier service as a child process, over gRPC."""

import shutil
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR, WEIGHTS
from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from quantmesh.common.v1 import common_pb2
from tools.mesh.launch import start_classifier
from tools.mesh.processes import ServiceProcess, free_port, health_status

CLASSIFY = "/quantmesh.classifier.v1.ClassifierService/Classify"
CLASSIFY_STREAM = "/quantmesh.classifier.v1.ClassifierService/ClassifyStream"
# A ClassifyRequest on the wire with field 2 (text) holding bytes that are not UTF-8: tag 0x12, length 3.
INVALID_UTF8_REQUEST = b"\x12\x03\xff\xfe\xfd"


@pytest.fixture(scope="module")
def channel(classifier_address: str):
    with grpc.insecure_channel(classifier_address) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> classifier_pb2_grpc.ClassifierServiceStub:
    return classifier_pb2_grpc.ClassifierServiceStub(channel)


def test_health_is_serving(classifier_address: str) -> None:
    assert health_status(classifier_address) == health_pb2.HealthCheckResponse.SERVING
    assert (
        health_status(classifier_address, "quantmesh.classifier.v1.ClassifierService")
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_classify(stub: classifier_pb2_grpc.ClassifierServiceStub) -> None:
    text = "A farmer has 17 sheep and buys 3 times as many goats. How many animals does he have?"
    classification = stub.Classify(
        classifier_pb2.ClassifyRequest(request_id="r1", text=text), timeout=5
    ).classification
    assert classification.intent == common_pb2.TASK_INTENT_MATH
    assert classification.tier in (
        common_pb2.COMPLEXITY_TIER_SIMPLE,
        common_pb2.COMPLEXITY_TIER_COMPLEX,
        common_pb2.COMPLEXITY_TIER_HARD,
    )
    assert sum(p.probability for p in classification.tier_probabilities) == pytest.approx(1.0)
    assert 0 < classification.numeric_token_share < 1
    assert classification.estimated_input_tokens > 10
    assert classification.model_version.startswith("clf-")


@pytest.mark.parametrize(
    ("text", "message"), [("", "text: must not be empty"), ("x" * 70_000, "text: 70000 bytes")]
)
def test_bad_text_is_invalid_argument(
    stub: classifier_pb2_grpc.ClassifierServiceStub, text: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Classify(classifier_pb2.ClassifyRequest(text=text), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


@pytest.mark.parametrize(
    "text", ["\x00\x01\x02\x1b[31m", "What is 2 + 2?\x00\x07\x7f", "\u200b\u202e\ufeff ask", "\ud7ff\ue000"]
)
def test_control_and_format_characters_get_a_classification(
    stub: classifier_pb2_grpc.ClassifierServiceStub, text: str
) -> None:
    """Valid UTF-8 made of control, zero-width or private-use characters is a text like any other: classified."""
    classification = stub.Classify(classifier_pb2.ClassifyRequest(text=text), timeout=5).classification
    assert classification.tier != common_pb2.COMPLEXITY_TIER_UNSPECIFIED
    assert classification.intent != common_pb2.TASK_INTENT_UNSPECIFIED
    assert classification.estimated_input_tokens > 0
    assert sum(p.probability for p in classification.tier_probabilities) == pytest.approx(1.0)


def test_a_wrapped_question_says_it_was_focused(stub: classifier_pb2_grpc.ClassifierServiceStub) -> None:
    question = "A farmer has 17 sheep and buys 3 times as many goats. How many animals does he have?"
    wrapped = f"system: You are a careful assistant. Show your steps.\nuser: {question}"
    bare = stub.Classify(classifier_pb2.ClassifyRequest(text=f"user: {question}"), timeout=5).classification
    focused = stub.Classify(classifier_pb2.ClassifyRequest(text=wrapped), timeout=5).classification
    assert focused.question_focused and not bare.question_focused
    assert focused.needs_strong_model_probability == bare.needs_strong_model_probability
    assert focused.estimated_input_tokens > bare.estimated_input_tokens
    assert not focused.encoder_truncated


def test_invalid_utf8_from_a_raw_client_is_invalid_argument(channel: grpc.Channel) -> None:
    raw = channel.unary_unary(CLASSIFY, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        raw(INVALID_UTF8_REQUEST, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("text:")


def test_stream_answers_in_order_with_an_error_item(stub: classifier_pb2_grpc.ClassifierServiceStub) -> None:
    texts = ["What is the capital of France?", "", "Write a haiku about autumn rain.", "Sum 2 and 40."]
    requests = [
        classifier_pb2.ClassifyStreamRequest(request_id=f"id-{i}", text=t) for i, t in enumerate(texts)
    ]
    responses = list(stub.ClassifyStream(iter(requests), timeout=10))
    assert [r.request_id for r in responses] == ["id-0", "id-1", "id-2", "id-3"]
    assert [r.WhichOneof("result") for r in responses] == [
        "classification",
        "error",
        "classification",
        "classification",
    ]
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert responses[1].error.message.startswith("text:")


def test_a_long_stream_answers_each_item_as_unary_does(stub: classifier_pb2_grpc.ClassifierServiceStub) -> None:
    texts = [f"Item {i}: what is {i} squared?" if i % 50 != 7 else "" for i in range(400)]
    requests = [classifier_pb2.ClassifyStreamRequest(request_id=str(i), text=t) for i, t in enumerate(texts)]
    responses = list(stub.ClassifyStream(iter(requests), timeout=30))  # sent at once: the server batches them
    assert [r.request_id for r in responses] == [str(i) for i in range(len(texts))]
    for text, response in list(zip(texts, responses, strict=True))[::37] + [(texts[7], responses[7])]:
        if text:
            unary = stub.Classify(classifier_pb2.ClassifyRequest(text=text), timeout=5).classification
            assert response.classification == unary
        else:
            assert response.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_a_stream_cancelled_midway_leaves_the_service_clean(
    stub: classifier_pb2_grpc.ClassifierServiceStub, classifier_process: ServiceProcess
) -> None:
    requests = (classifier_pb2.ClassifyStreamRequest(request_id=str(i), text=f"Add {i} and 1.") for i in range(10**6))
    stream = stub.ClassifyStream(requests, timeout=30)
    assert [next(stream).request_id for _ in range(3)] == ["0", "1", "2"]
    stream.cancel()  # with requests still queued and being read
    time.sleep(0.5)
    assert stub.Classify(classifier_pb2.ClassifyRequest(text="still there?"), timeout=5).classification.model_version
    assert classifier_process.log_path is not None
    log = classifier_process.log_path.read_text()
    assert "Traceback" not in log and "never retrieved" not in log and "exception" not in log.lower()


def test_stream_survives_an_undecodable_item(channel: grpc.Channel) -> None:
    raw = channel.stream_stream(CLASSIFY_STREAM, request_serializer=None, response_deserializer=None)
    good = classifier_pb2.ClassifyStreamRequest(request_id="ok", text="hello there").SerializeToString()
    responses = [
        classifier_pb2.ClassifyStreamResponse.FromString(r)
        for r in raw(iter([good, INVALID_UTF8_REQUEST, good]), timeout=10)
    ]
    assert [r.WhichOneof("result") for r in responses] == ["classification", "error", "classification"]
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_corrupt_artifact_keeps_the_service_not_serving(tmp_path: Path) -> None:
    artifact_dir = tmp_path / "artifact"
    shutil.copytree(DEFAULT_ARTIFACT_DIR, artifact_dir)
    (artifact_dir / WEIGHTS).write_bytes(b"not a zip file")
    log_path = tmp_path / "classifier.log"
    port = free_port()
    process = ServiceProcess(
        "classifier",
        "services.classifier",
        f"127.0.0.1:{port}",
        env={"QUANTMESH_CLASSIFIER_PORT": str(port), "QUANTMESH_CLASSIFIER_ARTIFACT_DIR": str(artifact_dir)},
        log_path=log_path,
    ).start()
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status is None:
            status = health_status(process.address)
            time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(process.address) as channel, pytest.raises(grpc.RpcError) as caught:
            classifier_pb2_grpc.ClassifierServiceStub(channel).Classify(
                classifier_pb2.ClassifyRequest(text="hello"), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "corrupt" in caught.value.details()
        assert "classifier_artifact_invalid" in log_path.read_text()
        with pytest.raises(RuntimeError, match="not SERVING"):
            process.wait_until_serving(1.0)
    finally:
        assert process.stop(timeout_s=10) == 0


def test_fixture_helper_refuses_a_missing_artifact(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="not SERVING"),
        start_classifier(
            tmp_path / "log",
            {"QUANTMESH_CLASSIFIER_ARTIFACT_DIR": str(tmp_path / "none")},
            start_timeout_s=3.0,
        ),
    ):
        pass
