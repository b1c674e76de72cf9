"""Percentiles and the latency figures derived from chunk timings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.profiler.stats import Distribution, RequestTrace, percentile, saturation, summarize_level


class TestPercentile:
    def test_interpolates_between_ranks(self) -> None:
        assert percentile([1, 2, 3, 4], 50) == 2.5
        assert percentile([10, 20, 30, 40, 50], 90) == pytest.approx(46.0)
        assert percentile([5], 99) == 5

    @given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 100))
    def test_matches_numpy_linear(self, values: list[float], q: float) -> None:
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q, method="linear")), abs=1e-6)

    def test_rejects_empty_and_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="no values"):
            percentile([], 50)
        with pytest.raises(ValueError, match=r"\[0, 100\]"):
            percentile([1.0], 101)

    def test_distribution_orders_its_percentiles(self) -> None:
        dist = Distribution.of([float(v) for v in range(1, 101)])
        assert dist.p50 <= dist.p90 <= dist.p99 and dist.count == 100


def trace(sent: float, arrivals: list[float], counts: list[int], done: float, prompt: int = 10) -> RequestTrace:
    return RequestTrace(sent, tuple(arrivals), tuple(counts), done, prompt, sum(counts))


class TestRequestTrace:
    def test_ttft_itl_tpot_e2e_from_chunk_times(self) -> None:
        # Sent at 0; tokens at 0.100 (1), 0.120 (1), 0.160 (2, coalesced), done at 0.165.
        t = trace(0.0, [0.100, 0.120, 0.160], [1, 1, 2], 0.165)
        assert t.ttft_ms == pytest.approx(100.0)
        assert t.itl_ms == pytest.approx([20.0, 20.0, 20.0])  # the 40 ms gap split over its 2 tokens
        assert t.tpot_ms == pytest.approx(60.0 / 3)
        assert t.e2e_latency_ms == pytest.approx(165.0)
        assert sum(t.itl_ms) == pytest.approx((0.160 - 0.100) * 1000)

    def test_tokens_of_the_first_chunk_have_no_itl(self) -> None:
        t = trace(0.0, [0.1, 0.2], [3, 1], 0.2)
        assert t.itl_ms == pytest.approx([100.0]) and t.tpot_ms == pytest.approx(100.0 / 3)

    def test_single_token_has_no_tpot(self) -> None:
        t = trace(0.0, [0.05], [1], 0.06)
        assert t.itl_ms == [] and t.tpot_ms is None

    def test_no_token(self) -> None:
        assert trace(0.0, [], [], 0.01).ttft_ms is None

    def test_token_count_must_match_usage(self) -> None:
        with pytest.raises(ValueError, match="carry 2 tokens but the worker reports 3"):
            RequestTrace(0.0, (0.1, 0.2), (1, 1), 0.3, 5, 3)

    def test_timings_must_be_ordered(self) -> None:
        with pytest.raises(ValueError, match="not in order"):
            trace(0.0, [0.2, 0.1], [1, 1], 0.3)


class TestLevels:
    def test_summary_of_one_level(self) -> None:
        traces = [trace(0.0, [0.1, 0.2], [1, 1], 0.2), trace(0.0, [0.3, 0.4, 0.5], [1, 1, 1], 0.5)]
        level = summarize_level(2, traces)
        assert level.requests == 2 and level.wall_s == pytest.approx(0.5)
        assert level.output_tokens_per_s == pytest.approx(5 / 0.5)
        assert level.requests_per_s == pytest.approx(4.0)
        assert level.ttft_ms.p50 == pytest.approx(200.0)
        assert level.itl_ms.count == 3 and level.itl_ms.p50 == pytest.approx(100.0)
        assert level.ttft_ms.p50 <= level.e2e_latency_ms.p50

    def test_level_without_two_tokens_cannot_measure_itl(self) -> None:
        with pytest.raises(ValueError, match="ITL is not measured"):
            summarize_level(1, [trace(0.0, [0.1], [1], 0.1)])

    def test_level_with_a_tokenless_request_fails(self) -> None:
        with pytest.raises(ValueError, match="generated no token"):
            summarize_level(1, [trace(0.0, [], [], 0.1), trace(0.0, [0.1, 0.2], [1, 1], 0.2)])

    def test_saturation_is_the_most_tokens_per_second(self) -> None:
        slow = summarize_level(1, [trace(0.0, [0.1, 0.2], [1, 1], 1.0)])
        fast = summarize_level(4, [trace(0.0, [0.1, 0.2], [1, 1], 0.2)])
        assert saturation([slow, fast]) is fast
        with pytest.raises(ValueError):
            saturation([])
