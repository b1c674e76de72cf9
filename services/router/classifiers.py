"""Where the router gets a query's classification: the ClassifierService over gRPC, or the same model in process.

Both answer with a `core.classification.Classification`, so the rest of the router does not know which one it has. Either raises `ClassificationFailed` when it cannot answer in time; the servicer then uses the
degraded rules (`degraded_classification`) and flags the decision.

Why embed: on the 2-core benchmark machine a Classify call costs 1-3 ms (a network round trip plus waking the
classifier process), most of what the router adds to time to first token, while the model itself takes about
0.2 ms for a chat-sized prompt (`benchmarks/results/router_overhead.json` compares the two). Why keep the service:
it scales, deploys and is retrained apart from the routers, and other callers use it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import grpc

from core.classification import Classification
from core.classifier_model.model import ClassifierModel
from quantmesh.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from services.router.convert import classification_from_proto

# Up to this many characters a text is classified on the event loop (about 1 ms at 4,000); longer texts (64 KB: about
# 15 ms) go to a thread, so that the loop keeps relaying other requests' tokens meanwhile.
INLINE_MAX_TEXT_CHARS = 4096


class ClassificationFailed(Exception):
    """The classifier could not answer (unreachable, failed, or too slow); the message says which."""


class QueryClassifier(Protocol):
    """Classifies one query for the router."""

    async def classify(self, text: str, request_id: str, timeout_s: float) -> Classification:
        """The classification of `text` (a non-empty prompt or rendered chat, at most the router's prompt limit).

        Raises:
            ClassificationFailed: no answer within `timeout_s` seconds, or the classifier failed.
        """
        ...


class RemoteClassifier:
    """`ClassifierService.Classify` over gRPC, one unary call per query with deadline `timeout_s`."""

    def __init__(self, stub: classifier_pb2_grpc.ClassifierServiceStub) -> None:
        self._stub = stub

    async def classify(self, text: str, request_id: str, timeout_s: float) -> Classification:
        try:
            response = await self._stub.Classify(classifier_pb2.ClassifyRequest(request_id=request_id, text=text),
                                                 timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            raise ClassificationFailed(f"{error.code().name}: {error.details()}") from None
        return classification_from_proto(response.classification)


class EmbeddedClassifier:
    """The ClassifierService's model (`core.classifier_model.model.ClassifierModel`) called in the router's process.

    Texts up to `INLINE_MAX_TEXT_CHARS` characters are classified on the event loop; longer ones in the default thread pool
    (the tokenizer and numpy release the GIL), with `timeout_s` as the limit.

    Args:
        model: A loaded artifact (`ClassifierModel.load`, which raises `ArtifactError` for a missing or corrupt one).
    """

    def __init__(self, model: ClassifierModel) -> None:
        self._model = model

    @property
    def model_version(self) -> str:
        return self._model.model_version

    async def classify(self, text: str, request_id: str, timeout_s: float) -> Classification:
        if len(text) <= INLINE_MAX_TEXT_CHARS:
            return self._model.classify(text)
        try:
            classification = await asyncio.wait_for(asyncio.to_thread(self._model.classify, text), timeout_s)
        except TimeoutError:
            raise ClassificationFailed(f"the embedded classifier took longer than {timeout_s * 1000:.0f} ms") from None
        return classification
