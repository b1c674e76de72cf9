"""A batch consumer's Prometheus metrics (names and labels: deploy/README.md "Metrics").

- `quantmesh_batch_queue_depth`: requests in the stream without a result (queued, or started and unfinished), the
  length KEDA scales on; sampled by every consumer once a second (take the max across consumers);
- `quantmesh_batch_queue_wait_seconds`: from queueing to the start of the attempt that stored the result (the
  seed's async SLA, "< 2 s", is alerted on its p99: deploy/prometheus/alerts.yml);
- `quantmesh_batch_results_total{outcome}`: results stored by this consumer: `succeeded`, `failed`, `cancelled`;
- `quantmesh_batch_duplicates_total`: attempts that found their request's result already stored (a retried or
  reclaimed entry): dropped, never stored twice;
- `quantmesh_batch_reclaimed_total`: entries taken over from a consumer that died or stalled (XAUTOCLAIM);
- `quantmesh_batch_in_flight_requests`: requests this consumer is running.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Queue waits from 10 ms to 10 min: the SLA threshold (2 s) is a bucket bound.
QUEUE_WAIT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

QUEUE_DEPTH = Gauge("quantmesh_batch_queue_depth", "Batch requests in the stream without a result.")
QUEUE_WAIT = Histogram("quantmesh_batch_queue_wait_seconds", "Time from queueing to the attempt that stored the "
                       "result.", buckets=QUEUE_WAIT_BUCKETS_S)
RESULTS = Counter("quantmesh_batch_results_total", "Batch results stored, by outcome.", ["outcome"])
DUPLICATES = Counter("quantmesh_batch_duplicates_total", "Attempts whose request already had its result.")
RECLAIMED = Counter("quantmesh_batch_reclaimed_total", "Entries reclaimed from a dead or stalled consumer.")
IN_FLIGHT = Gauge("quantmesh_batch_in_flight_requests", "Batch requests this consumer is running.")
