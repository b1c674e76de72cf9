"""`PairReplicas`: the workers a pair's endpoint names, as listed or as its DNS name resolves (the real resolver)."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from core.profiles import ENDPOINT_PATTERN
from services.router.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from services.router.workers import PairReplicas, WorkerHandle
from tests.fixtures.waiting import await_until
from tools.mesh.processes import free_port


def _handle(address: str) -> WorkerHandle:
    return WorkerHandle(address, CircuitBreaker(CircuitBreakerConfig()), 200, 1.5)


async def test_a_listed_endpoint_has_one_worker_per_address() -> None:
    replicas = PairReplicas("127.0.0.1:1,127.0.0.1:2", _handle, resolve_interval_s=5.0)
    try:
        assert sorted(replicas.handles) == ["127.0.0.1:1", "127.0.0.1:2"]
        # Nobody listens there: both are unhealthy, the pair too, and both are still tried in order.
        assert not replicas.state(("m", None)).healthy  # type: ignore[arg-type]
        assert [h.endpoint for h in replicas.pods(("m", None))] == ["127.0.0.1:1", "127.0.0.1:2"]  # type: ignore[arg-type]
    finally:
        await replicas.close()


async def test_a_dns_endpoint_has_one_worker_per_resolved_address() -> None:
    port = free_port()
    expected = {f"{'[' + host + ']' if ':' in host else host}:{port}"
                for host in {info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)}}
    replicas = PairReplicas(f"dns:///localhost:{port}", _handle, resolve_interval_s=0.05)
    try:
        async def resolved() -> bool:
            return set(replicas.handles) == expected
        await await_until(resolved, 5, 0.02)
        assert f"127.0.0.1:{port}" in replicas.handles
    finally:
        await replicas.close()
    assert not replicas.handles


async def test_an_unresolvable_name_keeps_no_worker_and_does_not_raise() -> None:
    replicas = PairReplicas("dns:///no-such-host.invalid:50053", _handle, resolve_interval_s=0.05)
    try:
        await asyncio.sleep(0.3)
        assert replicas.handles == {} and not replicas.state(("m", None)).healthy  # type: ignore[arg-type]
    finally:
        await replicas.close()


@pytest.mark.parametrize("endpoint", ["a:1,", "dns:///a:1,b:2", "a", "a b:1", "dns://a:1"])
def test_malformed_endpoints_are_refused_by_the_profile_schema(endpoint) -> None:
    assert re.match(ENDPOINT_PATTERN, endpoint) is None
