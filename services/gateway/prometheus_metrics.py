"""The gateway's own Prometheus metrics, beside the HTTP ones of prometheus-fastapi-instrumentator
(`quantmesh_gateway_http_requests_total{handler, method, status}`, `..._http_request_duration_seconds`, measured to
the end of a stream), all at the gateway's `/metrics` (deploy/README.md "Metrics").

- `quantmesh_gateway_active_streams`: streamed completions in flight.
- `quantmesh_gateway_client_disconnects_total`: completions whose client left before the end (the router call was
  cancelled, which aborts the engine request).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ACTIVE_STREAMS = Gauge("quantmesh_gateway_active_streams", "Streamed chat completions in flight.")
CLIENT_DISCONNECTS = Counter("quantmesh_gateway_client_disconnects_total",
                             "Chat completions whose client disconnected before the end.")
