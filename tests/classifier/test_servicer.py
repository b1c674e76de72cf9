"""ClassifyStream's reading, batching and error paths, called in process on the real model (no gRPC server)."""

from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.model import Classification, ClassifierModel
from quantmesh.classifier.v1 import classifier_pb2
from services.classifier.servicer import STREAM_MAX_BATCH, STREAM_READ_AHEAD, ClassifierServicer

MAX_TEXT_BYTES = 65_536


class BatchRecordingModel(ClassifierModel):
    """The real model, noting the size of every batch it classifies."""

    batch_sizes: list[int]

    def classify_batch(self, texts: Sequence[str]) -> list[Classification]:
        self.batch_sizes.append(len(texts))
        return super().classify_batch(texts)


@pytest.fixture(scope="module")
def model() -> BatchRecordingModel:
    return BatchRecordingModel.load(DEFAULT_ARTIFACT_DIR)


@pytest.fixture
def servicer(model: BatchRecordingModel) -> ClassifierServicer:
    model.batch_sizes = []
    return ClassifierServicer(model, MAX_TEXT_BYTES)


def _request(i: int, text: str | None = None) -> classifier_pb2.ClassifyStreamRequest:
    text = f"What is {i} times 7?" if text is None else text
    return classifier_pb2.ClassifyStreamRequest(request_id=f"r{i}", text=text)


async def _requests(
    items: list[classifier_pb2.ClassifyStreamRequest],
    read: list[int] | None = None,
    fail_after: int | None = None,
) -> AsyncIterator[classifier_pb2.ClassifyStreamRequest]:
    """The requests as a client stream; `read` collects the positions handed out, `fail_after` breaks the stream."""
    for position, item in enumerate(items):
        if position == fail_after:
            raise RuntimeError("the client's stream broke")
        if read is not None:
            read.append(position)
        yield item


async def test_queued_requests_are_classified_together_in_order(
    servicer: ClassifierServicer, model: BatchRecordingModel
) -> None:
    requests = [_request(i, "" if i % 9 == 4 else None) for i in range(100)]
    responses = [r async for r in servicer.ClassifyStream(_requests(requests), None)]
    batches = list(model.batch_sizes)
    texts = [r.text for r in requests if r.text]
    assert sum(batches) == len(texts)
    assert 1 < max(batches) <= STREAM_MAX_BATCH
    assert [r.request_id for r in responses] == [r.request_id for r in requests]
    for request, response in zip(requests, responses, strict=True):
        if request.text:  # the batch changes nothing in a text's answer
            assert response.classification == model.classify(request.text).to_proto()
        else:
            assert response.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_reading_stays_a_bounded_distance_ahead(servicer: ClassifierServicer) -> None:
    read: list[int] = []
    stream = servicer.ClassifyStream(_requests([_request(i) for i in range(1000)], read), None)
    first = await anext(stream)
    assert first.request_id == "r0"
    # One batch taken off the queue, the queue full again, and the item waiting to be put.
    assert len(read) <= STREAM_MAX_BATCH + STREAM_READ_AHEAD + 1
    await stream.aclose()


async def test_a_broken_request_stream_ends_the_rpc_after_the_answers_before_it(
    servicer: ClassifierServicer,
) -> None:
    responses = []
    with pytest.raises(RuntimeError, match="stream broke"):
        requests = _requests([_request(i) for i in range(5)], fail_after=3)
        async for response in servicer.ClassifyStream(requests, None):
            responses.append(response)
    assert [r.request_id for r in responses] == ["r0", "r1", "r2"]


async def test_without_a_model_every_item_is_unavailable() -> None:
    servicer = ClassifierServicer(None, MAX_TEXT_BYTES, unavailable_reason="no artifact here")
    responses = [r async for r in servicer.ClassifyStream(_requests([_request(0), _request(1, "")]), None)]
    assert [r.error.code for r in responses] == [
        grpc.StatusCode.UNAVAILABLE.value[0],
        grpc.StatusCode.INVALID_ARGUMENT.value[0],  # the text is checked before the model
    ]
    assert "no artifact here" in responses[0].error.message
