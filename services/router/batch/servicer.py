"""gRPC handlers of `BatchService`: CreateBatch, GetBatch, WatchBatch and CancelBatch, over the Redis batch store.

The router only queues and reads; batch consumers (`services.router.batch.consumer`) serve the requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from quantmesh.router.v1 import batch_pb2, batch_pb2_grpc
from services.router.batch.items import cancelled_result, validate_items
from services.router.batch.settings import BatchLimits
from services.router.batch.store import BatchMeta, BatchStore

MAX_PAGE_SIZE = 1000
WATCH_POLL_S = 0.2


class BatchServicer(batch_pb2_grpc.BatchServiceServicer):
    """The Batch API.

    Args:
        store: The batch store, or None for a router without Redis (every call is then FAILED_PRECONDITION).
        limits: Size, budget and retention limits (router settings `batch_*`).
        max_prompt_bytes: Largest prompt of one request, as for RouterService.Generate.
    """

    def __init__(self, store: BatchStore | None, limits: BatchLimits, max_prompt_bytes: int) -> None:
        self._store = store
        self._limits = limits
        self._max_prompt_bytes = max_prompt_bytes

    def _batch_store(self) -> BatchStore:
        if self._store is None:
            raise FailedPreconditionError("batches need the Redis store: this router has no QUANTMESH_ROUTER_REDIS_URL")
        return self._store

    async def CreateBatch(self, request: batch_pb2.CreateBatchRequest,
                          context: grpc.aio.ServicerContext) -> batch_pb2.CreateBatchResponse:
        store = self._batch_store()
        budget_ms = request.latency_budget_ms or self._limits.default_latency_budget_ms
        if budget_ms > self._limits.max_latency_budget_ms:
            raise InvalidArgumentError(f"latency_budget_ms: {budget_ms} is over this router's batch limit of "
                                       f"{self._limits.max_latency_budget_ms} ms")
        validate_items(request.items, latency_budget_ms=budget_ms, max_items=self._limits.max_items,
                       max_prompt_bytes=self._max_prompt_bytes)
        meta = await store.create(request.items, latency_budget_ms=budget_ms,
                                  results_ttl_s=self._limits.results_ttl_s, max_age_s=self._limits.max_age_s)
        return batch_pb2.CreateBatchResponse(batch=batch_proto(meta))

    async def GetBatch(self, request: batch_pb2.GetBatchRequest,
                       context: grpc.aio.ServicerContext) -> batch_pb2.GetBatchResponse:
        if request.page_size > MAX_PAGE_SIZE:
            raise InvalidArgumentError(f"page_size: at most {MAX_PAGE_SIZE}, got {request.page_size}")
        start = _page_start(request.page_token)
        meta = await self._meta(request.batch_id)
        response = batch_pb2.GetBatchResponse(batch=batch_proto(meta))
        if request.page_size:
            stop = min(start + request.page_size, meta.total)
            response.results.extend(await self._batch_store().results(meta.batch_id, start, stop))
            if stop < meta.total:
                response.next_page_token = str(stop)
        return response

    async def WatchBatch(self, request: batch_pb2.WatchBatchRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[batch_pb2.WatchBatchResponse]:
        meta = await self._meta(request.batch_id)
        yield batch_pb2.WatchBatchResponse(batch=batch_proto(meta))
        while meta.finished_at_ms is None:
            await asyncio.sleep(WATCH_POLL_S)
            latest = await self._meta(request.batch_id)
            if (latest.succeeded, latest.failed, latest.cancelled, latest.finished_at_ms) != (
                    meta.succeeded, meta.failed, meta.cancelled, meta.finished_at_ms):
                yield batch_pb2.WatchBatchResponse(batch=batch_proto(latest))
            meta = latest

    async def CancelBatch(self, request: batch_pb2.CancelBatchRequest,
                          context: grpc.aio.ServicerContext) -> batch_pb2.CancelBatchResponse:
        store = self._batch_store()
        meta = await self._meta(request.batch_id)
        if meta.finished_at_ms is None:
            await store.request_cancel(meta.batch_id)
            items = await store.items(meta.batch_id)
            # Consumers skip a request with a result; one already generating finds this result and drops its own.
            await store.store_results(meta.batch_id, [cancelled_result(index, item.custom_id)
                                                      for index, item in sorted(items.items())], "cancelled")
            meta = await self._meta(request.batch_id)
        return batch_pb2.CancelBatchResponse(batch=batch_proto(meta))

    async def _meta(self, batch_id: str) -> BatchMeta:
        meta = await self._batch_store().meta(batch_id) if batch_id else None
        if meta is None:
            raise NotFoundError(f"batch_id: no batch {batch_id!r} (unknown, or expired after its results TTL)")
        return meta


def batch_proto(meta: BatchMeta) -> batch_pb2.Batch:
    """The stored header as the API shows it."""
    if meta.finished_at_ms is None:
        status = batch_pb2.BATCH_STATUS_IN_PROGRESS
    elif meta.cancel_requested:
        status = batch_pb2.BATCH_STATUS_CANCELLED
    else:
        status = batch_pb2.BATCH_STATUS_COMPLETED
    batch = batch_pb2.Batch(batch_id=meta.batch_id, status=status, total=meta.total, succeeded=meta.succeeded,
                            failed=meta.failed, cancelled=meta.cancelled, latency_budget_ms=meta.latency_budget_ms,
                            created_at=_timestamp(meta.created_at_ms))
    if meta.finished_at_ms is not None:
        batch.finished_at.CopyFrom(_timestamp(meta.finished_at_ms))
        batch.expires_at.CopyFrom(_timestamp(meta.finished_at_ms + meta.results_ttl_s * 1000))
    return batch


def _timestamp(epoch_ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(epoch_ms)
    return stamp


def _page_start(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgumentError(f"page_token: {token!r} is not a next_page_token of this batch")
    return int(token)
