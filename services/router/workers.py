"""The router's view of its workers: one channel, one `WatchLoad` stream and one circuit breaker per endpoint.

A worker is healthy while its load stream is up, its last report says `serving`, that report is fresher than
`stale_after_s`, and the worker serves the pair the profile says (checked once per connection with GetModelInfo).
A dropped stream makes the worker unhealthy at once; it is reopened with backoff and the worker becomes healthy
again with its first report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import structlog

from core.profiles import ProfileDocument
from core.vocabulary import Quantization, from_proto
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.router.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from services.router.convert import load_from_proto
from services.router.policy import LoadSnapshot, WorkerView

log = structlog.get_logger(__name__)

RECONNECT_BACKOFF_S = (0.05, 1.0)


class WorkerHandle:
    """One worker endpoint: its stub for Generate, its live load and its breaker."""

    def __init__(self, endpoint: str, breaker: CircuitBreaker, interval_ms: int, stale_after_s: float,
                 open_channel: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel) -> None:
        self.endpoint = endpoint
        self.breaker = breaker
        self.channel = open_channel(endpoint)
        self.stub = worker_pb2_grpc.InferenceWorkerServiceStub(self.channel)
        self.served_pair: tuple[str, Quantization | None] | None = None
        self._interval_ms = interval_ms
        self._stale_after_s = stale_after_s
        self._stream_up = False
        self._serving = False
        self._last_report_at = 0.0
        self._load: LoadSnapshot | None = None
        self._task = asyncio.create_task(self._watch(), name=f"watch-load-{endpoint}")

    def state(self, expected_pair: tuple[str, Quantization]) -> WorkerView:
        fresh = time.monotonic() - self._last_report_at <= self._stale_after_s
        healthy = self._stream_up and self._serving and fresh and self.served_pair == expected_pair
        return WorkerView(healthy=healthy, circuit=self.breaker.state, circuit_allows=self.breaker.allows_request(),
                           load=self._load)

    async def _watch(self) -> None:
        delay = RECONNECT_BACKOFF_S[0]
        while True:
            try:
                info = await self.stub.GetModelInfo(worker_pb2.GetModelInfoRequest(), timeout=5.0)
                self.served_pair = (info.info.pair.model_id, from_proto(Quantization, info.info.pair.quantization))
                async for response in self.stub.WatchLoad(worker_pb2.WatchLoadRequest(interval_ms=self._interval_ms)):
                    if not self._stream_up:
                        log.info("worker_load_stream_up", endpoint=self.endpoint, pair=self.served_pair)
                    self._stream_up = True
                    self._serving = response.load.serving
                    self._load = load_from_proto(response.load)
                    self._last_report_at = time.monotonic()
                    delay = RECONNECT_BACKOFF_S[0]
            except grpc.aio.AioRpcError as exc:
                if self._stream_up:
                    log.warning("worker_load_stream_down", endpoint=self.endpoint, code=exc.code().name)
            self._stream_up = False
            await asyncio.sleep(delay)
            delay = min(RECONNECT_BACKOFF_S[1], delay * 2)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.channel.close()


class WorkerPool:
    """The handles of every endpoint in the profiles in use; `reconcile` follows profile changes."""

    def __init__(self, breaker_config: CircuitBreakerConfig, interval_ms: int, stale_after_s: float,
                 open_channel: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel) -> None:
        self._open_channel = open_channel  # TLS when the router's settings ask for it (services.common.tls)
        self._breaker_config = breaker_config
        self._interval_ms = interval_ms
        self._stale_after_s = stale_after_s
        self._handles: dict[str, WorkerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def reconcile(self, document: ProfileDocument) -> None:
        """Opens handles for new endpoints and closes those no longer in `document` (must run on the loop)."""
        wanted = {pair.endpoint for pair in document.pairs}
        for endpoint in wanted - self._handles.keys():
            self._handles[endpoint] = WorkerHandle(endpoint, CircuitBreaker(self._breaker_config), self._interval_ms,
                                                   self._stale_after_s, self._open_channel)
        for endpoint in self._handles.keys() - wanted:
            task = asyncio.create_task(self._handles.pop(endpoint).close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def handle(self, endpoint: str) -> WorkerHandle:
        return self._handles[endpoint]

    def states(self, document: ProfileDocument) -> dict[tuple[str, Quantization], WorkerView]:
        return {pair.key: self._handles[pair.endpoint].state(pair.key) for pair in document.pairs
                if pair.endpoint in self._handles}

    async def close(self) -> None:
        await asyncio.gather(*(handle.close() for handle in self._handles.values()), *self._closing)
        self._handles.clear()
