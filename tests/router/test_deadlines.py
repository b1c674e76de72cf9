"""Unit tests of budgets, worker deadlines and retry backoff."""

from __future__ import annotations

import random

import pytest

from core.errors import DeadlineExceededError
from services.router.deadlines import Deadline, RetryPolicy, effective_budget_ms


def test_the_smaller_of_budget_and_call_deadline_wins() -> None:
    assert effective_budget_ms(400, None) == 400.0
    assert effective_budget_ms(400, 0.25) == pytest.approx(250.0)
    assert effective_budget_ms(400, 2.0) == 400.0
    assert effective_budget_ms(400, -1.0) == 0.0


def test_worker_gets_what_is_left_minus_the_margin() -> None:
    now = [10.0]
    deadline = Deadline(300.0, clock=lambda: now[0])
    now[0] += 0.1
    assert deadline.remaining_ms() == pytest.approx(200.0)
    assert deadline.worker_timeout_s(margin_ms=20.0) == pytest.approx(0.18)
    now[0] += 0.19
    with pytest.raises(DeadlineExceededError, match="budget exhausted"):
        deadline.worker_timeout_s(margin_ms=20.0)


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_backoff_ms=10.0, max_backoff_ms=40.0)
    rng = random.Random(7)
    for retry_index, cap in [(0, 10.0), (1, 20.0), (2, 40.0), (5, 40.0)]:
        delays = [policy.backoff_ms(retry_index, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap  # spread over the whole range, not a constant
        assert len(set(delays)) > 150


def test_no_retry_once_attempts_or_time_run_out() -> None:
    policy = RetryPolicy(max_attempts=3, base_backoff_ms=5.0, min_attempt_ms=20.0)
    rng = random.Random(1)
    assert policy.next_backoff_ms(attempts_made=1, remaining_ms=1000.0, rng=rng) is not None
    assert policy.next_backoff_ms(attempts_made=3, remaining_ms=1000.0, rng=rng) is None
    assert policy.next_backoff_ms(attempts_made=1, remaining_ms=19.0, rng=rng) is None
