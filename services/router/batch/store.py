"""Batches in Redis: a Redis Stream of queued requests read by a consumer group, and one hash of results per batch
written once per request.

Redis layout (prefix configurable, default "quantmesh:batch"):
- `<prefix>:queue`            the stream; one entry per request: `b` batch id, `i` index, `t` queued at (ms since
  the epoch). Consumers read it in the group `GROUP` (XREADGROUP), and XACK + XDEL an entry once its result is
  stored, so the stream's length is the number of requests without a result (what KEDA scales on);
- `<prefix>:<id>:meta`        hash: `total`, `latency_budget_ms`, `created_at_ms`, `results_ttl_s`, the counters
  `succeeded` / `failed` / `cancelled`, `cancel_requested`, and `finished_at_ms` once the last result is stored;
- `<prefix>:<id>:items`       hash: index -> `BatchItem` (serialized protobuf);
- `<prefix>:<id>:results`     hash: index -> `BatchResult` (serialized protobuf), written with HSETNX;
- `<prefix>:<id>:attempts`    hash: index -> consumer attempts so far.

Exactly one result per request: `store_result` is one Lua script that writes the result only if the index has none
(HSETNX), counts it, and when it is the batch's last sets `finished_at_ms` and the results TTL on every key. A
retried entry (a consumer killed before its XACK, or a reclaimed one whose first consumer was only slow) finds the
result there and is acknowledged without a second one. `create` queues every request or none (one MULTI/EXEC).
An unfinished batch expires after `max_age_s` (the completion window), a finished one `results_ttl_s` after its
last result.

Errors: every call raises `UnavailableError` when Redis cannot be reached (the callers decide what that means).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from core.errors import UnavailableError
from quantmesh.router.v1 import batch_pb2

DEFAULT_PREFIX = "quantmesh:batch"
GROUP = "batch-consumers"
COUNTERS = ("succeeded", "failed", "cancelled")

_STORE_RESULT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
local m = redis.call('HMGET', KEYS[1], 'total', 'succeeded', 'failed', 'cancelled', 'results_ttl_s')
local done = (tonumber(m[2]) or 0) + (tonumber(m[3]) or 0) + (tonumber(m[4]) or 0)
if done >= tonumber(m[1]) then
  redis.call('HSET', KEYS[1], 'finished_at_ms', ARGV[4])
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], m[5]) end
end
return 1
"""


def queue_key(prefix: str = DEFAULT_PREFIX) -> str:
    """The stream's key (what KEDA's redis-streams trigger watches)."""
    return f"{prefix}:queue"


@dataclass(frozen=True)
class BatchMeta:
    """A batch's header and counters as stored."""

    batch_id: str
    total: int
    latency_budget_ms: int
    created_at_ms: int
    results_ttl_s: int
    succeeded: int
    failed: int
    cancelled: int
    cancel_requested: bool
    finished_at_ms: int | None

    @property
    def done(self) -> int:
        """Requests with a result."""
        return self.succeeded + self.failed + self.cancelled


@dataclass(frozen=True)
class QueuedEntry:
    """One stream entry a consumer holds: which request, and when it was queued (ms since the epoch)."""

    entry_id: str
    batch_id: str
    index: int
    queued_at_ms: int


class BatchStore:
    """Batches, their queue and their results in Redis (layout: module docstring).

    Args:
        client: A redis-py asyncio client (its socket timeout must exceed `read`'s `block_ms`).
        prefix: Key prefix.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.queue_key = queue_key(prefix)
        self._store_result = client.register_script(_STORE_RESULT)

    def _keys(self, batch_id: str) -> tuple[str, str, str, str]:
        base = f"{self.prefix}:{batch_id}"
        return f"{base}:meta", f"{base}:results", f"{base}:items", f"{base}:attempts"

    async def create(self, items: Sequence[batch_pb2.BatchItem], *, latency_budget_ms: int, results_ttl_s: int,
                     max_age_s: int) -> BatchMeta:
        """Queues a batch (all of it, or nothing on error) and returns its header."""
        batch_id = uuid.uuid4().hex
        now_ms = _now_ms()
        meta_key, _, items_key, _ = self._keys(batch_id)
        header = {"total": len(items), "latency_budget_ms": latency_budget_ms, "created_at_ms": now_ms,
                  "results_ttl_s": results_ttl_s, "cancel_requested": 0, **dict.fromkeys(COUNTERS, 0)}
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(meta_key, mapping=header)
                pipe.hset(items_key, mapping={str(i): item.SerializeToString() for i, item in enumerate(items)})
                for key in (meta_key, items_key):
                    pipe.expire(key, max_age_s)
                for index in range(len(items)):
                    pipe.xadd(self.queue_key, {"b": batch_id, "i": index, "t": now_ms})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"batch store unreachable: {exc}") from exc
        return BatchMeta(batch_id, len(items), latency_budget_ms, now_ms, results_ttl_s, 0, 0, 0, False, None)

    async def meta(self, batch_id: str) -> BatchMeta | None:
        """The batch's header, or None when it is unknown or expired."""
        fields = await self._call(self.client.hgetall(self._keys(batch_id)[0]))
        if not fields:
            return None
        values = {key.decode(): int(value) for key, value in fields.items()}
        return BatchMeta(batch_id, values["total"], values["latency_budget_ms"], values["created_at_ms"],
                         values["results_ttl_s"], *(values.get(name, 0) for name in COUNTERS),
                         bool(values.get("cancel_requested", 0)), values.get("finished_at_ms"))

    async def item(self, batch_id: str, index: int) -> batch_pb2.BatchItem | None:
        """The request at `index`, or None when the batch expired."""
        raw = await self._call(self.client.hget(self._keys(batch_id)[2], str(index)))
        return None if raw is None else batch_pb2.BatchItem.FromString(raw)

    async def items(self, batch_id: str) -> dict[int, batch_pb2.BatchItem]:
        """Every request of the batch by index."""
        raw = await self._call(self.client.hgetall(self._keys(batch_id)[2]))
        return {int(index): batch_pb2.BatchItem.FromString(value) for index, value in raw.items()}

    async def results(self, batch_id: str, start: int, stop: int) -> list[batch_pb2.BatchResult]:
        """The stored results of indexes start..stop-1, in index order (indexes without one are skipped)."""
        if stop <= start:
            return []
        raw = await self._call(self.client.hmget(self._keys(batch_id)[1], [str(i) for i in range(start, stop)]))
        return [batch_pb2.BatchResult.FromString(value) for value in raw if value is not None]

    async def has_result(self, batch_id: str, index: int) -> bool:
        """Whether the request at `index` has its result."""
        return bool(await self._call(self.client.hexists(self._keys(batch_id)[1], str(index))))

    async def request_cancel(self, batch_id: str) -> None:
        """Marks the batch cancelled: consumers store a CANCELLED result for each request they have not started."""
        await self._call(self.client.hset(self._keys(batch_id)[0], "cancel_requested", 1))

    async def store_result(self, batch_id: str, result: batch_pb2.BatchResult, counter: str) -> bool | None:
        """Stores the result of `result.index` unless it has one; `counter` is one of COUNTERS.

        Returns:
            True if stored, False if the request already had a result, None if the batch expired.
        """
        stored = await self._call(self._store_result(keys=list(self._keys(batch_id)),
                                                     args=[result.index, result.SerializeToString(), counter,
                                                           _now_ms()]))
        return None if stored == -1 else bool(stored)

    async def store_results(self, batch_id: str, results: Sequence[batch_pb2.BatchResult], counter: str) -> None:
        """`store_result` for each of `results`, in one round trip (CancelBatch's results)."""
        keys = list(self._keys(batch_id))
        async with self.client.pipeline(transaction=False) as pipe:
            for result in results:
                await self._store_result(keys=keys, args=[result.index, result.SerializeToString(), counter,
                                                          _now_ms()], client=pipe)
            await self._call(pipe.execute())

    async def count_attempt(self, batch_id: str, index: int) -> int:
        """Counts one more consumer attempt at the request and returns the count."""
        attempts_key = self._keys(batch_id)[3]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(attempts_key, str(index), 1)
            pipe.expire(attempts_key, 7 * 24 * 3600)
            count, _ = await self._call(pipe.execute())
        return int(count)

    async def ensure_group(self) -> None:
        """Creates the stream and its consumer group if missing (idempotent)."""
        try:
            await self.client.xgroup_create(self.queue_key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise UnavailableError(f"batch store: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"batch store unreachable: {exc}") from exc

    async def read(self, consumer: str, count: int, block_ms: int) -> list[QueuedEntry]:
        """Up to `count` entries never delivered to the group, waiting up to `block_ms` for the first."""
        response = await self._call(self.client.xreadgroup(GROUP, consumer, {self.queue_key: ">"}, count=count,
                                                           block=block_ms))
        return [entry for _, entries in response or () for entry in _entries(entries)]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[QueuedEntry]:
        """Up to `count` entries delivered but not acknowledged for `min_idle_ms` (their consumer died or stalled),
        now owned by `consumer` (XAUTOCLAIM)."""
        response = await self._call(self.client.xautoclaim(self.queue_key, GROUP, consumer, min_idle_ms,
                                                           start_id="0-0", count=count))
        return _entries(response[1])

    async def ack(self, entry: QueuedEntry) -> None:
        """Acknowledges and deletes the entry (its result is stored, or its batch is gone)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.queue_key, GROUP, entry.entry_id)
            pipe.xdel(self.queue_key, entry.entry_id)
            await self._call(pipe.execute())

    async def queue_depth(self) -> int:
        """Requests in the stream: queued and not yet started, or started and without a result."""
        return int(await self._call(self.client.xlen(self.queue_key)))

    @staticmethod
    async def _call(awaitable):  # type: ignore[no-untyped-def]
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"batch store unreachable: {exc}") from exc


def _entries(raw) -> list[QueuedEntry]:  # type: ignore[no-untyped-def]
    entries = []
    for entry_id, fields in raw:
        if not fields:  # deleted while pending (XAUTOCLAIM reports it as None)
            continue
        entries.append(QueuedEntry(entry_id.decode(), fields[b"b"].decode(), int(fields[b"i"]), int(fields[b"t"])))
    return entries


def _now_ms() -> int:
    return int(time.time() * 1000)
