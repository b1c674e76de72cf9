"""A circuit breaker per worker: closed, open, half-open, with a sliding failure window.

The classic pattern (M. Nygard, "Release It!", 2nd ed., ch. 5; the same states as Envoy's outlier detection):
- CLOSED: traffic flows; failures are counted over the last `window_s` seconds. `failure_threshold` failures in the
  window trip the breaker OPEN.
- OPEN: no traffic for `open_duration_s`; then the next look at the state finds it HALF_OPEN.
- HALF_OPEN: up to `half_open_max_probes` requests at a time are let through as probes; `half_open_successes`
  successful probes close the breaker (and clear the window), one failed probe re-opens it.

The clock is injected (`time.monotonic` by default) so that tests drive the transitions without sleeping.
What counts as a failure is the caller's decision (the router counts UNAVAILABLE, INTERNAL, UNKNOWN and streams
that break mid-way; not a caller's bad input, nor a deadline the caller made too tight).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Thresholds of a breaker.

    Attributes:
        failure_threshold: Failures within `window_s` that trip the breaker.
        window_s: Length of the sliding failure window, seconds.
        open_duration_s: How long the breaker stays open before probing, seconds.
        half_open_max_probes: Concurrent probe requests allowed while half-open.
        half_open_successes: Successful probes needed to close again.
    """

    failure_threshold: int = 5
    window_s: float = 10.0
    open_duration_s: float = 5.0
    half_open_max_probes: int = 1
    half_open_successes: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_max_probes < 1 or self.half_open_successes < 1:
            raise ValueError("failure_threshold, half_open_max_probes and half_open_successes must be >= 1")
        if self.window_s <= 0 or self.open_duration_s <= 0:
            raise ValueError("window_s and open_duration_s must be > 0")


class CircuitBreaker:
    """One worker's breaker. Not thread-safe: used from one asyncio event loop."""

    def __init__(self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker whose open period has passed reports HALF_OPEN)."""
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self._config.open_duration_s:
            self._state = CircuitState.HALF_OPEN
            self._probes_in_flight = 0
            self._probe_successes = 0
        return self._state

    def allows_request(self) -> bool:
        """Whether a request may be sent now (CLOSED, or HALF_OPEN with a free probe slot)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        return state is CircuitState.HALF_OPEN and self._probes_in_flight < self._config.half_open_max_probes

    def on_request_start(self) -> None:
        """Call when a request is sent: takes a probe slot while HALF_OPEN."""
        if self.state is CircuitState.HALF_OPEN:
            self._probes_in_flight += 1

    def record_success(self) -> None:
        """A request finished well; enough successful probes close a HALF_OPEN breaker."""
        if self.state is CircuitState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self._config.half_open_successes:
                self._state = CircuitState.CLOSED
                self._failures.clear()

    def record_failure(self) -> None:
        """A request failed: counted in the window (CLOSED) or re-opens the breaker (HALF_OPEN)."""
        now = self._clock()
        state = self.state
        if state is CircuitState.HALF_OPEN:
            self._open(now)
            return
        if state is CircuitState.OPEN:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self._config.window_s:
            self._failures.popleft()
        if len(self._failures) >= self._config.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = now
        self._failures.clear()
        self._probes_in_flight = 0
        self._probe_successes = 0
