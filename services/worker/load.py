"""Load bookkeeping shared by the engines: the latest scheduler counters, output tokens/s over a window, and change
notification for `WatchLoad`. No I/O: the engine feeds it, the servicer reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from services.worker.engine import EngineLoad

THROUGHPUT_WINDOW_S = 5.0


class ThroughputWindow:
    """Generated tokens per second over the last `window_s` seconds (sum of tokens in the window / window_s).

    Args:
        window_s: Length of the sliding window in seconds.
    """

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def record(self, tokens: int, at_s: float) -> None:
        """Counts `tokens` generated at monotonic time `at_s` (non-decreasing across calls)."""
        if tokens <= 0:
            return
        self._events.append((at_s, tokens))
        self._total += tokens
        self._expire(at_s)

    def rate(self, now_s: float) -> float:
        """Tokens per second over (now_s - window_s, now_s]."""
        self._expire(now_s)
        return self._total / self.window_s

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self.window_s
        while self._events and self._events[0][0] <= horizon:
            self._total -= self._events.popleft()[1]


class LoadTracker:
    """The latest engine counters, numbered by a version that grows at every change, and a wake-up for watchers.

    A change is any difference in running or waiting requests or in KV-cache usage (throughput alone drifts
    continuously and would turn every report into a change).
    """

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S) -> None:
        self._throughput = ThroughputWindow(window_s)
        self._running = 0
        self._waiting = 0
        self._kv_cache_usage = 0.0
        self._version = 0
        self._changed = asyncio.Event()

    def update_scheduler(self, running: int, waiting: int, kv_cache_usage_fraction: float) -> None:
        """Records the scheduler counters of one engine step; wakes watchers if they changed."""
        counters = (running, waiting, kv_cache_usage_fraction)
        if counters != (self._running, self._waiting, self._kv_cache_usage):
            self._running, self._waiting, self._kv_cache_usage = counters
            self._version += 1
            # Wake everyone waiting on this change; later waiters wait on a fresh event.
            self._changed.set()
            self._changed = asyncio.Event()

    def record_generated(self, tokens: int, at_s: float | None = None) -> None:
        """Counts generated tokens for the throughput figure."""
        self._throughput.record(tokens, time.monotonic() if at_s is None else at_s)

    def snapshot(self) -> EngineLoad:
        """The current load."""
        return EngineLoad(
            running_requests=self._running,
            waiting_requests=self._waiting,
            kv_cache_usage_fraction=min(max(self._kv_cache_usage, 0.0), 1.0),
            output_tokens_per_s=self._throughput.rate(time.monotonic()),
            version=self._version,
        )

    async def wait_for_change(self, since_version: int, timeout_s: float) -> None:
        """Returns once the counters changed after `since_version` (at once if they already did), or after
        `timeout_s`."""
        if self._version != since_version:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)
