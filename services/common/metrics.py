"""Prometheus plumbing shared by the services: the `/metrics` HTTP endpoint and the histogram buckets.

Each service defines its own metric families (`services/<svc>/prometheus_metrics.py`) in prometheus-client's default
registry, once, at import; the names, types and labels are the contract in deploy/README.md "Metrics". A process
serves them with `start_metrics_server` on its `metrics_port` setting (None or 0: no endpoint). One registry per
process is enough: the worker's vLLM engine processes export nothing themselves (the worker reads the engine's load
snapshot in its own process), so prometheus-client's multiprocess mode is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

import prometheus_client
import structlog

log = structlog.get_logger(__name__)

# Request latencies in seconds, 1 ms to 60 s: interactive budgets (P99 < 400 ms) and async ones (< 2 s) both fall
# in the dense middle, with room for long generations (docs/architecture.md "The problem it solves").
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                     1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
# Inter-token latency in seconds: 1 ms (a large GPU) to 1 s (an overloaded CPU engine).
ITL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                 1.0)
# The classifier's in-process path takes ~0.2 ms; buckets from 50 us to 100 ms.
FAST_BUCKETS_S = (0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
# Latency / budget: dense around 1.0 (on budget), where the P99-over-budget alert's threshold is.
BUDGET_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0)


@dataclass
class MetricsServer:
    """A running `/metrics` HTTP endpoint (a daemon thread serving prometheus-client's default registry).

    Attributes:
        port: The bound port.
    """

    port: int
    _httpd: WSGIServer
    _thread: Thread

    def close(self) -> None:
        """Stops serving and closes the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)


def start_metrics_server(host: str, port: int | None) -> MetricsServer | None:
    """Serves `/metrics` (Prometheus text format) on `host:port` from a daemon thread.

    Args:
        host: Address to bind (the service's own `host` setting).
        port: Port to bind; None or 0 disables the endpoint (returns None).

    Raises:
        OSError: the port cannot be bound.
    """
    if not port:
        return None
    prometheus_client.disable_created_metrics()  # *_created series double the series count for no use here
    httpd, thread = prometheus_client.start_http_server(port, addr=host)
    server = MetricsServer(httpd.server_port, httpd, thread)
    log.info("metrics_endpoint_started", host=host, port=server.port, path="/metrics")
    return server
