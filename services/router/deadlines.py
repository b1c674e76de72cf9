"""Deadlines and retry backoff: how much time a request has left, and how long to wait between attempts.

- The effective budget is the smaller of the request's `latency_budget_ms` and the time left on the caller's gRPC
  deadline (docs/architecture.md "Deadlines, retries, failure").
- A worker is given what is left of that budget minus a margin (`worker_timeout_s`): the margin pays for relaying
  the worker's last message and the summary, so that the worker gives up before the caller's deadline passes and
  the caller hears DEADLINE_EXCEEDED from the router, not silence.
- Retry backoff is exponential with "full jitter" (delay uniform in [0, min(cap, base x 2^attempt)]; M. Brooker,
  "Exponential Backoff And Jitter", AWS Architecture Blog, 2015): retries from many routers do not synchronise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import DeadlineExceededError


def effective_budget_ms(latency_budget_ms: float, call_time_remaining_s: float | None) -> float:
    """min(latency_budget_ms, the call's remaining deadline in ms); the call's deadline is None when unset."""
    if call_time_remaining_s is None:
        return float(latency_budget_ms)
    return max(0.0, min(float(latency_budget_ms), call_time_remaining_s * 1000.0))


class Deadline:
    """A budget that started at a point in time, on an injectable monotonic clock (seconds)."""

    def __init__(self, budget_ms: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started_at = clock()
        self.budget_ms = budget_ms

    def elapsed_ms(self) -> float:
        return (self._clock() - self.started_at) * 1000.0

    def remaining_ms(self) -> float:
        return self.budget_ms - self.elapsed_ms()

    def worker_timeout_s(self, margin_ms: float) -> float:
        """Seconds to give a worker call: what is left minus `margin_ms`.

        Raises:
            DeadlineExceededError: nothing would be left for the worker.
        """
        left_ms = self.remaining_ms() - margin_ms
        if left_ms <= 0:
            raise DeadlineExceededError(
                f"latency budget exhausted: {self.remaining_ms():.1f} ms left of {self.budget_ms:.1f} ms, "
                f"below the {margin_ms:.1f} ms worker margin"
            )
        return left_ms / 1000.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on another pair before the first token (UNAVAILABLE / RESOURCE_EXHAUSTED only).

    Attributes:
        max_attempts: Worker calls per request, the first included.
        base_backoff_ms: Backoff cap of the first retry, ms (doubles per retry).
        max_backoff_ms: Largest backoff cap, ms.
        min_attempt_ms: A retry is made only if at least this much budget is left after the backoff, ms.
    """

    max_attempts: int = 3
    base_backoff_ms: float = 5.0
    max_backoff_ms: float = 100.0
    min_attempt_ms: float = 20.0

    def backoff_ms(self, retry_index: int, rng: random.Random) -> float:
        """Full-jitter delay before retry number `retry_index` (0 for the first retry), ms."""
        cap = min(self.max_backoff_ms, self.base_backoff_ms * (2**retry_index))
        return rng.uniform(0.0, cap)

    def next_backoff_ms(self, attempts_made: int, remaining_ms: float, rng: random.Random) -> float | None:
        """The delay before the next attempt, or None when no retry is allowed (attempts or time used up)."""
        if attempts_made >= self.max_attempts:
            return None
        delay = self.backoff_ms(attempts_made - 1, rng)
        if remaining_ms - delay < self.min_attempt_ms:
            return None
        return delay
