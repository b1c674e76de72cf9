"""gRPC handlers of `quantmesh.classifier.v1.ClassifierService`.

Registered with request deserializers that do not fail the RPC on undecodable bytes: grpc-python's generated
deserializer raises on a proto3 `string` holding invalid UTF-8 (protobuf refuses it), which the server would report
as a bare INTERNAL or UNKNOWN. Here such a request becomes `UndecodableRequest`, answered with INVALID_ARGUMENT naming
the `text` field (in a stream: an `ItemError` for that item, and the stream goes on).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace

from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2
from services.classifier.conversions import classification_to_proto
from services.classifier.model import ClassifierModel
from services.classifier.prometheus_metrics import ClassifierMetrics
from services.classifier.validation import validate_text
from services.common.errors import InvalidArgument, QuantmeshError, Unavailable

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


@dataclass(frozen=True)
class UndecodableRequest:
    """A request whose bytes protobuf could not parse (for example a `text` that is not valid UTF-8)."""

    reason: str


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

    def _classify(
        self,
        request: classifier_pb2.ClassifyRequest | classifier_pb2.ClassifyStreamRequest | UndecodableRequest,
    ) -> classifier_pb2.Classification:
        """Raises InvalidArgument (bad text) or Unavailable (no model)."""
        if isinstance(request, UndecodableRequest):
            raise InvalidArgument(
                f"text: the request could not be parsed (is text valid UTF-8?): {request.reason}"
            )
        validate_text(request.text, self._max_text_bytes)
        if self._model is None:
            raise Unavailable(f"classifier model not loaded: {self._unavailable_reason}")
        started = time.perf_counter()
        classification = self._model.classify(request.text)
        message = classification_to_proto(classification)
        self._metrics.classified(classification.tier, classification.intent, time.perf_counter() - started)
        return message

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ClassifyResponse:
        """Classifies one text. Errors: INVALID_ARGUMENT (empty, too long, undecodable), UNAVAILABLE (no model)."""
        classification = self._classify(request)
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
        """One response per request, in order; a bad item gets an `ItemError` (its status code and message)."""
        async for request in request_iterator:
            request_id = "" if isinstance(request, UndecodableRequest) else request.request_id
            try:
                classification = self._classify(request)
            except QuantmeshError as exc:
                yield classifier_pb2.ClassifyStreamResponse(
                    request_id=request_id,
                    error=classifier_pb2.ItemError(code=exc.code.value[0], message=exc.message),
                )
                continue
            yield classifier_pb2.ClassifyStreamResponse(request_id=request_id, classification=classification)


def register(servicer: ClassifierServicer, server: grpc.aio.Server) -> None:
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
