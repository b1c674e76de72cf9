"""Admission control at the worker: refuse a request its deadline cannot cover under the engine's current load.

No I/O: the servicer tells it when a request is admitted, produces tokens and ends; the clock is injectable.

Prediction, from what this worker measured over the last `window_s` seconds (the same shape as the router's model,
`services.router.policy`: TTFT + ITL x (output tokens - 1), here with live measurements instead of profiles):
- TTFT now = mean time from admission to first token of the requests that got their first token in the window (it
  includes the engine's queue: requests waiting for a slot or for KV-cache blocks);
- ITL now = sum of the gaps between a stream's consecutive token deliveries / tokens delivered, over every stream
  in the window: the per-stream decode interval the engine actually gives at the current batch size;
- predicted latency = TTFT now + ITL now x (max_output_tokens - 1) (max_output_tokens: the worker cannot know when
  the model stops, so this is an upper bound, as in the router).
The request is refused (RESOURCE_EXHAUSTED, `retry-after-ms` = predicted latency - time left, rounded up) when that
exceeds the time left on its gRPC deadline. An idle worker (nothing in flight), a request without deadline, or no
measurement in the window (nothing ran lately) always admits: there is no queue to wait in.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ResourceExhaustedError

RETRY_AFTER_KEY = "retry-after-ms"
MEASUREMENT_WINDOW_S = 2.0
MAX_RETRY_AFTER_MS = 60_000


@dataclass
class _Stream:
    admitted_at: float
    last_tokens_at: float | None = None


class WorkerAdmission:
    """Tracks in-flight requests and recent TTFT / ITL; `admit` decides (module docstring).

    Args:
        enabled: False: measure but never refuse (`WorkerSettings.admission_control`).
        window_s: Length of the measurement window, s.
        clock: Monotonic clock, s.
    """

    def __init__(self, enabled: bool = True, window_s: float = MEASUREMENT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._enabled = enabled
        self._window_s = window_s
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._ttft: deque[tuple[float, float]] = deque()  # (at, ttft_s)
        self._gaps: deque[tuple[float, float, int]] = deque()  # (at, gap_s, tokens)
        self._gap_s_sum = 0.0
        self._gap_tokens = 0

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    def predicted_latency_s(self, max_output_tokens: int) -> float | None:
        """Predicted latency of a new request, s; None when nothing was measured in the window."""
        now = self._clock()
        self._expire(now)
        if not self._ttft and not self._gap_tokens:
            return None
        ttft_s = sum(sample for _, sample in self._ttft) / len(self._ttft) if self._ttft else 0.0
        itl_s = self._gap_s_sum / self._gap_tokens if self._gap_tokens else 0.0
        return ttft_s + itl_s * max(0, max_output_tokens - 1)

    def admit(self, request_id: str, max_output_tokens: int, time_remaining_s: float | None) -> None:
        """Admits the request (and starts tracking it) or refuses it.

        Raises:
            ResourceExhaustedError: the predicted latency exceeds `time_remaining_s` (with `retry-after-ms`).
        """
        if self._enabled and self._streams and time_remaining_s is not None:
            predicted_s = self.predicted_latency_s(max_output_tokens)
            if predicted_s is not None and predicted_s > time_remaining_s:
                retry_after_ms = min(MAX_RETRY_AFTER_MS, max(1, math.ceil((predicted_s - time_remaining_s) * 1000)))
                raise ResourceExhaustedError(
                    f"overloaded: {len(self._streams)} request(s) in flight, predicted {predicted_s * 1000:.0f} ms "
                    f"for {max_output_tokens} output tokens, over the {time_remaining_s * 1000:.0f} ms left before "
                    f"the deadline; retry after {retry_after_ms} ms",
                    trailing_metadata=((RETRY_AFTER_KEY, str(retry_after_ms)),),
                )
        self._streams[request_id] = _Stream(admitted_at=self._clock())

    def on_tokens(self, request_id: str, tokens: int) -> None:
        """Records `tokens` delivered on the request's stream now."""
        stream = self._streams.get(request_id)
        if stream is None or tokens <= 0:
            return
        now = self._clock()
        if stream.last_tokens_at is None:
            self._ttft.append((now, now - stream.admitted_at))
        else:
            gap_s = now - stream.last_tokens_at
            self._gaps.append((now, gap_s, tokens))
            self._gap_s_sum += gap_s
            self._gap_tokens += tokens
        stream.last_tokens_at = now
        self._expire(now)

    def release(self, request_id: str) -> None:
        """Stops tracking the request (finished, failed or cancelled); no-op when unknown."""
        self._streams.pop(request_id, None)

    def _expire(self, now: float) -> None:
        horizon = now - self._window_s
        while self._ttft and self._ttft[0][0] <= horizon:
            self._ttft.popleft()
        while self._gaps and self._gaps[0][0] <= horizon:
            _, gap_s, tokens = self._gaps.popleft()
            self._gap_s_sum -= gap_s
            self._gap_tokens -= tokens
        if not self._gaps:  # no float residue from the running sum
            self._gap_s_sum = 0.0
