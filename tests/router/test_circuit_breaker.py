"""Unit tests of the circuit breaker's transitions, on a clock the test advances."""

from __future__ import annotations

import pytest

from services.router.circuit_breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState


class SteppedClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(**config: float) -> tuple[CircuitBreaker, SteppedClock]:
    clock = SteppedClock()
    defaults = {"failure_threshold": 3, "window_s": 10.0, "open_duration_s": 5.0}
    return CircuitBreaker(CircuitBreakerConfig(**{**defaults, **config}), clock), clock


def test_threshold_failures_within_the_window_open_the_circuit() -> None:
    cb, clock = breaker()
    for _ in range(2):
        cb.record_failure()
        clock.now += 1
    assert cb.state is CircuitState.CLOSED and cb.allows_request()
    cb.record_failure()
    assert cb.state is CircuitState.OPEN and not cb.allows_request()


def test_failures_outside_the_sliding_window_are_forgotten() -> None:
    cb, clock = breaker()
    cb.record_failure()
    cb.record_failure()
    clock.now += 11  # both age out of the 10 s window
    cb.record_failure()
    assert cb.state is CircuitState.CLOSED


def test_successes_do_not_reset_the_window_while_closed() -> None:
    cb, _ = breaker()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    assert cb.state is CircuitState.OPEN


def test_open_becomes_half_open_after_the_open_duration_and_a_probe_closes_it() -> None:
    cb, clock = breaker(failure_threshold=1)
    cb.record_failure()
    clock.now += 4.9
    assert cb.state is CircuitState.OPEN
    clock.now += 0.2
    assert cb.state is CircuitState.HALF_OPEN and cb.allows_request()
    cb.on_request_start()
    assert not cb.allows_request()  # one probe at a time
    cb.record_success()
    assert cb.state is CircuitState.CLOSED and cb.allows_request()


def test_a_failed_probe_reopens_for_a_full_period() -> None:
    cb, clock = breaker(failure_threshold=1)
    cb.record_failure()
    clock.now += 5
    cb.on_request_start()
    cb.record_failure()
    assert cb.state is CircuitState.OPEN
    clock.now += 4.9
    assert cb.state is CircuitState.OPEN
    clock.now += 0.1
    assert cb.state is CircuitState.HALF_OPEN


def test_several_successful_probes_may_be_required() -> None:
    cb, clock = breaker(failure_threshold=1, half_open_successes=2, half_open_max_probes=2)
    cb.record_failure()
    clock.now += 5
    cb.on_request_start()
    cb.on_request_start()
    cb.record_success()
    assert cb.state is CircuitState.HALF_OPEN
    cb.record_success()
    assert cb.state is CircuitState.CLOSED


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreakerConfig(window_s=0)
