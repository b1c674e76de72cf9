"""`client.batches`: asynchronous batches (`BatchService`): create, get, watch, cancel, and read every result.

Example::

    with QuantmeshClient("127.0.0.1:50051") as client:
        batch = client.batches.create([BatchRequest("q1", "What is 2 + 2?", max_output_tokens=16)])
        for status in client.batches.watch(batch.batch_id):
            print(status.done, "/", status.total)
        for result in client.batches.results(batch.batch_id):
            print(result.custom_id, result.text if result.error_code is None else result.error_code)

Calls raise the `core.errors` exceptions: `InvalidArgumentError` (a bad request, named by index and custom_id; a
batch over the router's size limit, with the limit), `NotFoundError` (unknown or expired batch id),
`UnavailableError` (router or batch store unreachable), `FailedPreconditionError` (a router without Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

from clients.messages import Pair, Prompt, Sampling, Usage, fill_input
from core import vocabulary
from core.errors import from_rpc_error
from core.vocabulary import BatchStatus, FinishReason
from quantmesh.router.v1 import batch_pb2, batch_pb2_grpc

RESULTS_PAGE_SIZE = 1000


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch.

    Attributes:
        custom_id: Your id for it, 1-64 printable characters, unique in the batch; its result carries it.
        prompt: A raw prompt or chat messages.
        max_output_tokens: Tokens to generate at most, >= 1.
        required_accuracy: Minimum expected accuracy of the chosen pair for the query's tier, in [0, 1].
        sampling: Sampling parameters (None: the engine's defaults).
    """

    custom_id: str
    prompt: Prompt
    max_output_tokens: int = 64
    required_accuracy: float = 0.0
    sampling: Sampling | None = None

    def to_proto(self) -> batch_pb2.BatchItem:
        item = batch_pb2.BatchItem(custom_id=self.custom_id, max_output_tokens=self.max_output_tokens,
                                   required_accuracy=self.required_accuracy)
        fill_input(item, self.prompt)  # type: ignore[arg-type]  # BatchItem has the same input oneof
        if self.sampling is not None:
            item.sampling.CopyFrom(self.sampling.to_proto())
        return item


@dataclass(frozen=True)
class Batch:
    """A batch's status and counts (`done` = succeeded + failed + cancelled)."""

    batch_id: str
    status: BatchStatus
    total: int
    succeeded: int
    failed: int
    cancelled: int
    latency_budget_ms: int
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def finished(self) -> bool:
        return self.status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED)

    @classmethod
    def from_proto(cls, message: batch_pb2.Batch) -> Batch:
        return cls(message.batch_id, vocabulary.from_proto(BatchStatus, message.status), message.total,
                   message.succeeded, message.failed, message.cancelled, message.latency_budget_ms,
                   message.created_at.ToDatetime(), _optional_time(message, "finished_at"),
                   _optional_time(message, "expires_at"))


@dataclass(frozen=True)
class BatchResult:
    """The one result of one request: an output (`text`, `usage`, ...) or an error (`error_code`, a gRPC status
    code name, and `error_message`).

    Attributes:
        queue_wait_ms: From queueing to the start of the attempt that produced it, ms.
        attempts: Consumer attempts at the request.
    """

    index: int
    custom_id: str
    queue_wait_ms: float
    attempts: int
    text: str | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    served_by: Pair | None = None
    actual_cost_usd: float | None = None
    e2e_latency_ms: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def from_proto(cls, message: batch_pb2.BatchResult) -> BatchResult:
        common = {"index": message.index, "custom_id": message.custom_id, "queue_wait_ms": message.queue_wait_ms,
                  "attempts": message.attempts}
        if message.HasField("error"):
            return cls(**common, error_code=message.error.code, error_message=message.error.message)
        output = message.output
        return cls(**common, text=output.text, usage=Usage.from_proto(output.usage),
                   finish_reason=vocabulary.from_proto(FinishReason, output.finish_reason),
                   served_by=Pair.from_proto(output.served_by), actual_cost_usd=output.actual_cost_usd,
                   e2e_latency_ms=output.e2e_latency_ms)


def _optional_time(message: batch_pb2.Batch, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime() if message.HasField(name) else None


def _create_request(requests: Sequence[BatchRequest], latency_budget_ms: int) -> batch_pb2.CreateBatchRequest:
    return batch_pb2.CreateBatchRequest(items=[request.to_proto() for request in requests],
                                        latency_budget_ms=latency_budget_ms)


class AsyncBatches:
    """`BatchService` over an `AsyncQuantmeshClient`'s channel."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = batch_pb2_grpc.BatchServiceStub(channel)
        self._timeout_s = timeout_s

    async def create(self, requests: Sequence[BatchRequest], latency_budget_ms: int = 0) -> Batch:
        """Queues the requests (all or none); `latency_budget_ms` per request once started (0: the router's
        default)."""
        try:
            response = await self._stub.CreateBatch(_create_request(requests, latency_budget_ms),
                                                    timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)

    async def get(self, batch_id: str) -> Batch:
        """The batch's status and counts."""
        try:
            response = await self._stub.GetBatch(batch_pb2.GetBatchRequest(batch_id=batch_id), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)

    async def watch(self, batch_id: str) -> AsyncIterator[Batch]:
        """The batch's status at once and at every change, until it is finished."""
        try:
            async for response in self._stub.WatchBatch(batch_pb2.WatchBatchRequest(batch_id=batch_id)):
                yield Batch.from_proto(response.batch)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every result stored so far, in index order (page by page)."""
        token = ""
        while True:
            try:
                response = await self._stub.GetBatch(batch_pb2.GetBatchRequest(
                    batch_id=batch_id, page_size=RESULTS_PAGE_SIZE, page_token=token), timeout=self._timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from None
            for result in response.results:
                yield BatchResult.from_proto(result)
            token = response.next_page_token
            if not token:
                return

    async def cancel(self, batch_id: str) -> Batch:
        """Cancels the requests without a result yet."""
        try:
            response = await self._stub.CancelBatch(batch_pb2.CancelBatchRequest(batch_id=batch_id),
                                                    timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)


class Batches:
    """The sync twin of `AsyncBatches`."""

    def __init__(self, channel: grpc.Channel, timeout_s: float) -> None:
        self._stub = batch_pb2_grpc.BatchServiceStub(channel)
        self._timeout_s = timeout_s

    def create(self, requests: Sequence[BatchRequest], latency_budget_ms: int = 0) -> Batch:
        """See `AsyncBatches.create`."""
        try:
            response = self._stub.CreateBatch(_create_request(requests, latency_budget_ms), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)

    def get(self, batch_id: str) -> Batch:
        """See `AsyncBatches.get`."""
        try:
            response = self._stub.GetBatch(batch_pb2.GetBatchRequest(batch_id=batch_id), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)

    def watch(self, batch_id: str) -> Iterator[Batch]:
        """See `AsyncBatches.watch`."""
        try:
            for response in self._stub.WatchBatch(batch_pb2.WatchBatchRequest(batch_id=batch_id)):
                yield Batch.from_proto(response.batch)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """See `AsyncBatches.results`."""
        token = ""
        while True:
            try:
                response = self._stub.GetBatch(batch_pb2.GetBatchRequest(
                    batch_id=batch_id, page_size=RESULTS_PAGE_SIZE, page_token=token), timeout=self._timeout_s)
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from None
            yield from (BatchResult.from_proto(result) for result in response.results)
            token = response.next_page_token
            if not token:
                return

    def cancel(self, batch_id: str) -> Batch:
        """See `AsyncBatches.cancel`."""
        try:
            response = self._stub.CancelBatch(batch_pb2.CancelBatchRequest(batch_id=batch_id),
                                              timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Batch.from_proto(response.batch)
