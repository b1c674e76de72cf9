"""A batch consumer: reads queued requests from the stream in the consumer group, has the router route and serve
each, stores its one result, and only then acknowledges the entry.

Per entry (`_serve`):
1. The batch is gone (expired): acknowledge and drop. The request has a result (a retried or reclaimed entry):
   acknowledge, count a duplicate, store nothing.
2. Count the attempt. Past `max_attempts`, or the batch cancelled: store an error result.
3. Otherwise call RouterService.Generate (cost-first, the batch's latency budget: `items.generate_request`) and
   collect the text. UNAVAILABLE and RESOURCE_EXHAUSTED are retried in place with exponential backoff (or the
   router's `retry-after-ms`) while attempts remain; any other status is the request's result.
4. Store the result (`BatchStore.store_result`: once per request), then XACK + XDEL the entry.

A consumer killed at any point loses nothing: its unacknowledged entries are reclaimed by the others (XAUTOCLAIM)
after `visibility_timeout_ms`, and a result it stored before dying is found in step 1. While Redis is unreachable
every store call is retried with backoff (up to 2 s apart), the in-flight generations keep their outputs, and no
entry is acknowledged before its result is stored.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import structlog

from core.errors import ResourceExhaustedError, UnavailableError, from_rpc_error
from quantmesh.router.v1 import batch_pb2, router_pb2_grpc
from services.router.batch import prometheus_metrics as metrics
from services.router.batch.items import cancelled_result, error_result, generate_request
from services.router.batch.settings import BatchConsumerSettings
from services.router.batch.store import BatchMeta, BatchStore, QueuedEntry

log = structlog.get_logger(__name__)

TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# The router's deadline is the budget plus this: the budget itself bounds the generation (the router applies it).
ROUTER_DEADLINE_SLACK_S = 1.0
STORE_RETRY_MAX_S = 2.0
DEPTH_SAMPLE_S = 1.0

T = TypeVar("T")


class BatchConsumer:
    """One consumer of the group (module docstring).

    Args:
        store: The batch store.
        router: RouterService stub (its channel is the caller's).
        settings: Concurrency, timeouts and retry limits.
        metadata: Sent on every router call (for example the bearer token).
    """

    def __init__(self, store: BatchStore, router: router_pb2_grpc.RouterServiceStub, settings: BatchConsumerSettings,
                 metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._store = store
        self._router = router
        self._settings = settings
        self._metadata = metadata
        self._name = settings.name()
        self._tasks: dict[str, asyncio.Task[None]] = {}  # entry id -> its task
        self._slot_freed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._rng = random.Random()
        self._redis_down_since: float | None = None

    async def start(self) -> None:
        """Creates the consumer group if missing (waiting for Redis), then starts reading and reclaiming."""
        await self._until_stored(self._store.ensure_group)
        self._loops = [asyncio.create_task(loop()) for loop in (self._read_loop, self._reclaim_loop, self._depth_loop)]
        log.info("batch_consumer_started", consumer=self._name, concurrency=self._settings.concurrency)

    async def stop(self, grace_s: float) -> None:
        """Stops reading; requests in flight get `grace_s` to finish, then are cancelled (their entries stay pending
        and are reclaimed by another consumer)."""
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks.values()), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("batch_consumer_stopped", consumer=self._name)

    @property
    def _free_slots(self) -> int:
        return self._settings.concurrency - len(self._tasks)

    async def _read_loop(self) -> None:
        while True:
            while self._free_slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            entries = await self._until_stored(
                lambda: self._store.read(self._name, self._free_slots, self._settings.read_block_ms))
            self._spawn(entries)

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reclaim_interval_ms / 1000.0)
            if self._free_slots <= 0:
                continue
            try:
                entries = await self._store.reclaim(self._name, self._settings.visibility_timeout_ms, self._free_slots)
            except UnavailableError:
                continue  # the read loop reports the outage
            entries = [entry for entry in entries if entry.entry_id not in self._tasks]
            if entries:
                metrics.RECLAIMED.inc(len(entries))
                log.info("batch_entries_reclaimed", count=len(entries))
            self._spawn(entries)

    async def _depth_loop(self) -> None:
        while True:
            try:
                metrics.QUEUE_DEPTH.set(await self._store.queue_depth())
            except UnavailableError:
                pass
            await asyncio.sleep(DEPTH_SAMPLE_S)

    def _spawn(self, entries: list[QueuedEntry]) -> None:
        for entry in entries:
            task = asyncio.create_task(self._serve(entry))
            self._tasks[entry.entry_id] = task
            metrics.IN_FLIGHT.set(len(self._tasks))
            task.add_done_callback(lambda _, entry_id=entry.entry_id: self._done(entry_id))

    def _done(self, entry_id: str) -> None:
        task = self._tasks.pop(entry_id)
        metrics.IN_FLIGHT.set(len(self._tasks))
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("batch_entry_failed", entry_id=entry_id, error=repr(task.exception()))

    async def _serve(self, entry: QueuedEntry) -> None:
        store = self._store
        meta = await self._until_stored(lambda: store.meta(entry.batch_id))
        item = await self._until_stored(lambda: store.item(entry.batch_id, entry.index)) if meta else None
        if meta is None or item is None:
            log.warning("batch_entry_expired", batch_id=entry.batch_id, index=entry.index)
            await self._until_stored(lambda: store.ack(entry))
            return
        if await self._until_stored(lambda: store.has_result(entry.batch_id, entry.index)):
            metrics.DUPLICATES.inc()
            await self._until_stored(lambda: store.ack(entry))
            return
        started_ms = time.time() * 1000.0
        attempts = await self._until_stored(lambda: store.count_attempt(entry.batch_id, entry.index))
        if meta.cancel_requested:
            result, counter = cancelled_result(entry.index, item.custom_id), "cancelled"
        elif attempts > self._settings.max_attempts:
            result, counter = error_result(entry.index, item.custom_id, grpc.StatusCode.UNAVAILABLE.name,
                                            f"no result after {self._settings.max_attempts} attempts (consumers "
                                            "died while serving it)"), "failed"
        else:
            result, counter, attempts = await self._generate(entry, item, meta, attempts)
        result.queue_wait_ms = started_ms - entry.queued_at_ms
        result.attempts = attempts
        stored = await self._until_stored(lambda: store.store_result(entry.batch_id, result, counter))
        if stored:
            metrics.QUEUE_WAIT.observe(result.queue_wait_ms / 1000.0)
            metrics.RESULTS.labels(counter).inc()
        elif stored is False:
            metrics.DUPLICATES.inc()
        await self._until_stored(lambda: store.ack(entry))

    async def _generate(self, entry: QueuedEntry, item: batch_pb2.BatchItem, meta: BatchMeta,
                        attempts: int) -> tuple[batch_pb2.BatchResult, str, int]:
        """(result, counter, attempts) of the request: its output, or the last error."""
        request = generate_request(entry.batch_id, entry.index, item, meta.latency_budget_ms)
        timeout_s = meta.latency_budget_ms / 1000.0 + ROUTER_DEADLINE_SLACK_S
        while True:
            parts: list[str] = []
            try:
                summary = None
                async for response in self._router.Generate(request, timeout=timeout_s, metadata=self._metadata):
                    if response.HasField("chunk"):
                        parts.append(response.chunk.text)
                    elif response.HasField("summary"):
                        summary = response.summary
            except grpc.aio.AioRpcError as error:
                if error.code() in TRANSIENT_CODES and attempts < self._settings.max_attempts:
                    await asyncio.sleep(self._backoff_s(attempts, error))
                    attempts = await self._until_stored(
                        lambda: self._store.count_attempt(entry.batch_id, entry.index))
                    continue
                return error_result(entry.index, item.custom_id, error.code().name, error.details() or ""), \
                    "failed", attempts
            if summary is None:
                return error_result(entry.index, item.custom_id, grpc.StatusCode.INTERNAL.name,
                                     "the router ended the stream without a summary"), "failed", attempts
            output = batch_pb2.BatchOutput(text="".join(parts), usage=summary.usage,
                                           finish_reason=summary.finish_reason, served_by=summary.served_by,
                                           actual_cost_usd=summary.actual_cost_usd,
                                           e2e_latency_ms=summary.e2e_latency_ms)
            return batch_pb2.BatchResult(index=entry.index, custom_id=item.custom_id, output=output), "succeeded", \
                attempts

    def _backoff_s(self, attempts: int, error: grpc.aio.AioRpcError) -> float:
        """Full-jitter exponential backoff, or the router's `retry-after-ms` when it sent one (admission)."""
        refused = from_rpc_error(error)
        if isinstance(refused, ResourceExhaustedError) and refused.retry_after_s is not None:
            return refused.retry_after_s
        cap_ms = min(self._settings.retry_max_backoff_ms, self._settings.retry_backoff_ms * 2 ** (attempts - 1))
        return self._rng.uniform(0.5, 1.0) * cap_ms / 1000.0

    async def _until_stored(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, retried with backoff while Redis is unreachable (logged once per outage)."""
        delay_s = 0.05
        while True:
            try:
                value = await call()
            except UnavailableError as exc:
                if self._redis_down_since is None:
                    self._redis_down_since = time.monotonic()
                    log.warning("batch_store_unreachable", error=exc.message)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, STORE_RETRY_MAX_S)
                continue
            if self._redis_down_since is not None:
                log.info("batch_store_reachable", outage_s=round(time.monotonic() - self._redis_down_since, 3))
                self._redis_down_since = None
            return value

