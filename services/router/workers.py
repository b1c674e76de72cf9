"""The router's view of its workers: one channel, one `WatchLoad` stream and one circuit breaker per worker (pod).

A pair's endpoint names one worker (host:port), replicas (host:port,host:port,...) or a DNS name
(dns:///host:port, a Kubernetes headless Service: every address it resolves to is a replica; it is re-resolved every
`resolve_interval_s`, so pods that come and go are picked up and dropped). `PairReplicas` holds the pair's workers.

A worker is healthy while its load stream is up, its last report says `serving`, that report is fresher than
`stale_after_s`, and the worker serves the pair the profile says (checked once per connection with GetModelInfo).
A dropped stream makes the worker unhealthy at once; it is reopened with backoff and the worker becomes healthy
again with its first report.

Which replica: `PairReplicas.pods` orders the healthy replicas whose breaker lets a request through by load, least
first: the larger of this router's own requests in flight there (exact, and current between reports) and the
worker's last reported running + waiting requests (which counts other routers' requests too). The pair's view for
the policy (`state`) is its best replica's: healthy if any replica is, with that replica's load.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import grpc
import structlog

from core.profiles import ProfileDocument, endpoint_addresses
from core.vocabulary import Quantization, from_proto
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.router.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from services.router.convert import load_from_proto
from services.router.policy import LoadSnapshot, WorkerView

log = structlog.get_logger(__name__)

RECONNECT_BACKOFF_S = (0.05, 1.0)
DNS_PREFIX = "dns:///"


class WorkerHandle:
    """One worker (one replica of a pair, at `endpoint` = host:port): its stub for Generate, its live load and its
    breaker."""

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
        self.in_flight = 0  # this router's requests on this worker now (the servicer counts them)
        self._task = asyncio.create_task(self._watch(), name=f"watch-load-{endpoint}")

    @property
    def load_score(self) -> int:
        """Requests on this worker: this router's in flight, or the last report's running + waiting if larger."""
        reported = self._load.running_requests + self._load.waiting_requests if self._load is not None else 0
        return max(self.in_flight, reported)

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


class PairReplicas:
    """The workers of one pair's endpoint (module docstring).

    Args:
        endpoint: host:port, host:port,host:port,..., or dns:///host:port.
        new_handle: Opens the handle of one worker address.
        resolve_interval_s: How often a dns:/// endpoint is resolved again, s.
    """

    def __init__(self, endpoint: str, new_handle: Callable[[str], WorkerHandle], resolve_interval_s: float) -> None:
        self.endpoint = endpoint
        self._new_handle = new_handle
        self._resolve_interval_s = resolve_interval_s
        self.handles: dict[str, WorkerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._resolver: asyncio.Task[None] | None = None
        if endpoint.startswith(DNS_PREFIX):
            self._resolver = asyncio.create_task(self._follow_dns(), name=f"resolve-{endpoint}")
        else:
            self._set_addresses(endpoint_addresses(endpoint))

    def state(self, expected_pair: tuple[str, Quantization]) -> WorkerView:
        """The pair as the policy sees it: its least-loaded healthy replica, or an unhealthy view if none is."""
        views = [(handle, handle.state(expected_pair)) for handle in self.handles.values()]
        healthy = [(handle, view) for handle, view in views if view.healthy and view.circuit_allows]
        if healthy:
            return min(healthy, key=lambda item: item[0].load_score)[1]
        if views:
            return next((view for _, view in views if view.healthy), views[0][1])
        return WorkerView(healthy=False)

    def pods(self, expected_pair: tuple[str, Quantization]) -> list[WorkerHandle]:
        """Every replica in the order to try them: healthy ones whose breaker lets a request through, least loaded
        first, then the rest (a request the policy sent here is tried even if every replica looks down)."""
        def rank(handle: WorkerHandle) -> tuple[bool, int]:
            view = handle.state(expected_pair)
            return (not (view.healthy and view.circuit_allows), handle.load_score)
        return sorted(self.handles.values(), key=rank)

    def _set_addresses(self, addresses: tuple[str, ...]) -> None:
        wanted = set(addresses)
        for address in addresses:
            if address not in self.handles:
                self.handles[address] = self._new_handle(address)
        for address in self.handles.keys() - wanted:
            log.info("worker_replica_removed", endpoint=self.endpoint, address=address)
            task = asyncio.create_task(self.handles.pop(address).close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _follow_dns(self) -> None:
        host, port = self.endpoint.removeprefix(DNS_PREFIX).rsplit(":", 1)
        loop = asyncio.get_running_loop()
        while True:
            try:
                found = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:  # keep the replicas known so far: a DNS hiccup is not a pod going away
                log.warning("worker_dns_resolution_failed", endpoint=self.endpoint, error=str(exc))
            else:
                addresses = tuple(sorted({_address(info[4][0], int(port)) for info in found}))
                if addresses != tuple(sorted(self.handles)):
                    log.info("worker_replicas_resolved", endpoint=self.endpoint, addresses=list(addresses))
                self._set_addresses(addresses)
            await asyncio.sleep(self._resolve_interval_s)

    async def close(self) -> None:
        if self._resolver is not None:
            self._resolver.cancel()
            await asyncio.gather(self._resolver, return_exceptions=True)
        await asyncio.gather(*(handle.close() for handle in self.handles.values()), *self._closing)
        self.handles.clear()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WorkerPool:
    """The replicas of every pair endpoint in the profiles in use; `reconcile` follows profile changes."""

    def __init__(self, breaker_config: CircuitBreakerConfig, interval_ms: int, stale_after_s: float,
                 open_channel: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel,
                 resolve_interval_s: float = 5.0) -> None:
        self._open_channel = open_channel  # TLS when the router's settings ask for it (services.common.tls)
        self._breaker_config = breaker_config
        self._interval_ms = interval_ms
        self._stale_after_s = stale_after_s
        self._resolve_interval_s = resolve_interval_s
        self._pairs: dict[str, PairReplicas] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _new_handle(self, address: str) -> WorkerHandle:
        return WorkerHandle(address, CircuitBreaker(self._breaker_config), self._interval_ms, self._stale_after_s,
                            self._open_channel)

    def reconcile(self, document: ProfileDocument) -> None:
        """Opens the replicas of new endpoints and closes those no longer in `document` (must run on the loop)."""
        wanted = {pair.endpoint for pair in document.pairs}
        for endpoint in wanted - self._pairs.keys():
            self._pairs[endpoint] = PairReplicas(endpoint, self._new_handle, self._resolve_interval_s)
        for endpoint in self._pairs.keys() - wanted:
            task = asyncio.create_task(self._pairs.pop(endpoint).close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def replicas(self, endpoint: str) -> PairReplicas:
        return self._pairs[endpoint]

    def states(self, document: ProfileDocument) -> dict[tuple[str, Quantization], WorkerView]:
        return {pair.key: self._pairs[pair.endpoint].state(pair.key) for pair in document.pairs
                if pair.endpoint in self._pairs}

    async def close(self) -> None:
        await asyncio.gather(*(replicas.close() for replicas in self._pairs.values()), *self._closing)
        self._pairs.clear()
