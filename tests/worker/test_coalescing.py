"""The coalescing window of Generate streams under load: a share of the worker's chunk budget, clamped."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.worker.servicer import coalesce_window_s
from services.worker.settings import WorkerSettings


@pytest.mark.parametrize(
    ("streams", "expected_s"),
    [
        (8, 0.010),  # the share, 8 / 1200 s = 6.7 ms, is below the floor
        (16, 16 / 1200),  # from 12 streams on, the worker sends about 1,200 chunks/s in all
        (64, 64 / 1200),
        (240, 0.100),  # the share, 200 ms, is above the cap
    ],
)
def test_the_window_is_the_stream_share_of_the_budget_clamped(streams: int, expected_s: float) -> None:
    window_s = coalesce_window_s(streams, max_chunks_per_s=1200.0, min_window_s=0.010, max_window_s=0.100)
    assert window_s == pytest.approx(expected_s)


def test_a_max_window_below_the_min_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="stream_coalesce_max_window_ms"):
        WorkerSettings(model="m", served_model_name="m", stream_coalesce_window_ms=20, stream_coalesce_max_window_ms=5)
