"""gRPC handlers of `quantmesh.classifier.v1.ClassifierService`.

Registered with request deserializers that do not fail the RPC on undecodable bytes: grpc-python's generated
deserializer raises on a proto3 `string` holding invalid UTF-8 (protobuf refuses it), which the server would report
as a bare INTERNAL or UNKNOWN. Here such a request becomes `UndecodableRequest`, answered with INVALID_ARGUMENT naming
the `text` field (in a stream: an `ItemError` for that item, and the stream goes on).

`ClassifyStream` reads requests in a task of its own while it classifies and writes: the requests that arrived
meanwhile are classified together (`ClassifierModel.classify_batch`: the same answers as one by one, for less time
per text), and reading overlaps writing instead of alternating with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace

from core.classifier_model.model import ClassifierModel
from core.errors import InvalidArgumentError, QuantmeshError, UnavailableError
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from services.classifier.prometheus_metrics import ClassifierMetrics
from services.classifier.validation import validate_text
from services.common.method_wrapping import WrappingRegistrar

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name
# Requests read ahead of the classifier in one stream: a bound, so that a client sending faster than the model
# classifies is held back by gRPC flow control rather than by the server's memory (at most 64 x MAX_TEXT_BYTES).
STREAM_READ_AHEAD = 64
# Most requests classified together. A batch holds the event loop (other RPCs wait) for about 16 x 0.12 ms; the
# time per text falls little past 16 (in process, 2,000 texts of the benchmark: 0.19 ms alone, 0.12 ms in 16s,
# 0.11 ms in 64s).
STREAM_MAX_BATCH = 16


@dataclass(frozen=True)
class UndecodableRequest:
    """A request whose bytes protobuf could not parse (for example a `text` that is not valid UTF-8)."""

    reason: str


@dataclass(frozen=True)
class _ReadFailed:
    """Reading the request stream raised `error`: the writer raises it in the RPC's own task."""

    error: Exception


_END_OF_REQUESTS = object()


async def _read_requests(request_iterator: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
    """Puts every request of the stream on `queue`, then `_END_OF_REQUESTS` (or `_ReadFailed`)."""
    try:
        async for request in request_iterator:
            await queue.put(request)
    except Exception as exc:  # noqa: BLE001 - handed over, raised where the status interceptor sees it
        await queue.put(_ReadFailed(exc))
    else:
        await queue.put(_END_OF_REQUESTS)


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return UndecodableRequest(str(exc))

    return deserialize


class ClassifierServicer:
    """Classify and ClassifyStream over a loaded model.

    Args:
        model: The loaded model, or None when the artifact could not be loaded (every RPC is then UNAVAILABLE).
        max_text_bytes: Largest text accepted, in UTF-8 bytes.
        unavailable_reason: Why there is no model (sent to callers with UNAVAILABLE).
        metrics: Where classifications are recorded (Prometheus; default: with the loaded model's intents).
    """

    def __init__(
        self, model: ClassifierModel | None, max_text_bytes: int, unavailable_reason: str = "",
        metrics: ClassifierMetrics | None = None,
    ) -> None:
        self._model = model
        self._metrics = metrics or ClassifierMetrics(model.intents if model is not None else ())
        self._max_text_bytes = max_text_bytes
        self._unavailable_reason = unavailable_reason

    def _text(
        self,
        request: classifier_pb2.ClassifyRequest | classifier_pb2.ClassifyStreamRequest | UndecodableRequest,
    ) -> str:
        """The request's text, checked. Raises InvalidArgumentError (bad text) or UnavailableError (no model)."""
        if isinstance(request, UndecodableRequest):
            raise InvalidArgumentError(
                f"text: the request could not be parsed (is text valid UTF-8?): {request.reason}"
            )
        validate_text(request.text, self._max_text_bytes)
        if self._model is None:
            raise UnavailableError(f"classifier model not loaded: {self._unavailable_reason}")
        return request.text

    def _classify_texts(self, texts: Sequence[str]) -> list[classifier_pb2.Classification]:
        """Classifies checked texts together; each records the batch's time divided by its size (its share)."""
        assert self._model is not None  # `_text` refused every request when there is no model
        started = time.perf_counter()
        classifications = self._model.classify_batch(texts)
        messages = [classification.to_proto() for classification in classifications]
        seconds = (time.perf_counter() - started) / len(texts)
        for classification in classifications:
            self._metrics.classified(classification.tier, classification.intent, seconds)
        return messages

    def _stream_responses(
        self, requests: Sequence[classifier_pb2.ClassifyStreamRequest | UndecodableRequest]
    ) -> list[classifier_pb2.ClassifyStreamResponse]:
        """One response per request, in order: a classification, or an `ItemError` for a request `_text` refused."""
        texts: list[str] = []
        refused: dict[int, QuantmeshError] = {}
        for position, request in enumerate(requests):
            try:
                texts.append(self._text(request))
            except QuantmeshError as exc:
                refused[position] = exc
        classifications = iter(self._classify_texts(texts) if texts else ())
        responses = []
        for position, request in enumerate(requests):
            request_id = "" if isinstance(request, UndecodableRequest) else request.request_id
            error = refused.get(position)
            if error is None:
                responses.append(
                    classifier_pb2.ClassifyStreamResponse(request_id=request_id, classification=next(classifications))
                )
            else:
                item_error = classifier_pb2.ItemError(code=error.code.value[0], message=error.message)
                responses.append(classifier_pb2.ClassifyStreamResponse(request_id=request_id, error=item_error))
        return responses

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ClassifyResponse:
        """Classifies one text. Errors: INVALID_ARGUMENT (empty, too long, undecodable), UNAVAILABLE (no model)."""
        classification = self._classify_texts((self._text(request),))[0]
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({"quantmesh.classification.tier": common_pb2.ComplexityTier.Name(classification.tier),
                                 "quantmesh.classification.intent": common_pb2.TaskIntent.Name(classification.intent),
                                 "quantmesh.classification.model_version": classification.model_version})
        return classifier_pb2.ClassifyResponse(classification=classification)

    async def ClassifyStream(
        self,
        request_iterator: AsyncIterator[classifier_pb2.ClassifyStreamRequest | UndecodableRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """One response per request, in order; a bad item gets an `ItemError` (its status code and message).

        Requests are read by a task of their own (at most `STREAM_READ_AHEAD` ahead); each turn classifies every
        request already read (at most `STREAM_MAX_BATCH`) and writes their responses.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue(STREAM_READ_AHEAD)
        reader = asyncio.create_task(_read_requests(request_iterator, queue))
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < STREAM_MAX_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                end = batch.pop() if batch[-1] is _END_OF_REQUESTS or isinstance(batch[-1], _ReadFailed) else None
                for response in self._stream_responses(batch):
                    yield response
                if isinstance(end, _ReadFailed):
                    raise end.error
                if end is not None:
                    return
        finally:
            reader.cancel()  # the RPC ended early (error, cancellation): stop reading


def register(servicer: ClassifierServicer, server: WrappingRegistrar) -> None:
    """Adds the servicer to `server` with the tolerant deserializers (in place of the generated `add_..._to_server`)."""
    handlers = {
        "Classify": grpc.unary_unary_rpc_method_handler(
            servicer.Classify,
            request_deserializer=_tolerant(classifier_pb2.ClassifyRequest.FromString),
            response_serializer=classifier_pb2.ClassifyResponse.SerializeToString,
        ),
        "ClassifyStream": grpc.stream_stream_rpc_method_handler(
            servicer.ClassifyStream,
            request_deserializer=_tolerant(classifier_pb2.ClassifyStreamRequest.FromString),
            response_serializer=classifier_pb2.ClassifyStreamResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
