"""The classifier's Prometheus metrics (names, types and labels: deploy/README.md "Metrics").

- `quantmesh_classifier_latency_seconds` (histogram): time to classify one text (model and proto conversion),
  successful classifications only, unary and stream alike; texts of a stream classified together each record the
  batch's time divided by its size.
- `quantmesh_classifier_classifications_total{tier, intent}` (counter): classifications by tier and intent; every
  (tier, intent) of the loaded model is exported from start-up at 0, so rates exist before the first request.

The hot path is ~0.2 ms, so a classification costs one histogram observation and one counter increment on a child
bound at start-up (a dict lookup, no label resolution).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from core.vocabulary import ComplexityTier
from services.common.metrics import FAST_BUCKETS_S

CLASSIFICATION_LATENCY = Histogram(
    "quantmesh_classifier_latency_seconds", "Classification latency.", buckets=FAST_BUCKETS_S
)
CLASSIFICATIONS = Counter(
    "quantmesh_classifier_classifications_total", "Classifications by tier and intent.", ["tier", "intent"]
)


class ClassifierMetrics:
    """Records classifications; `intents` are the loaded model's intent names (pre-initialised with every tier)."""

    def __init__(self, intents: Iterable[str] = ()) -> None:
        self._counts = {(tier, intent): CLASSIFICATIONS.labels(tier, intent) for tier in ComplexityTier.known() for intent in intents}

    def classified(self, tier: str, intent: str, seconds: float) -> None:
        """One successful classification that took `seconds`."""
        CLASSIFICATION_LATENCY.observe(seconds)
        counter = self._counts.get((tier, intent))
        if counter is None:  # an intent the manifest did not list: still counted, bound once
            counter = self._counts[(tier, intent)] = CLASSIFICATIONS.labels(tier, intent)
        counter.inc()
