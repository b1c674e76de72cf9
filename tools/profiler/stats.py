"""Latency statistics of streamed generations: percentiles, TTFT, ITL, TPOT and e2e latency from chunk timings.

Definitions (those of vLLM's `benchmark_serving`, measured at the client so that they include gRPC, as production
sees them):
- TTFT: from sending the request to receiving the first token chunk.
- ITL (inter-token latency): the gap between consecutive token chunks, divided evenly among the tokens of the later
  chunk (a worker coalesces tokens into one chunk under load); tokens that arrive in the first chunk have no ITL
  sample (their time is in TTFT). The ITL samples of a request sum to (last chunk - first chunk).
- TPOT (time per output token): (last chunk - first chunk) / (output tokens - 1); undefined for one token.
- e2e latency: from sending the request to receiving the completion message.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of `values` by linear interpolation between closest ranks.

    This is Hyndman and Fan's type 7, numpy's default (`numpy.percentile(..., method="linear")`).

    Raises:
        ValueError: `values` is empty, or `q` is outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    """p50 / p90 / p99 of a sample, in the sample's unit, and the sample size."""

    p50: float
    p90: float
    p99: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        """Raises ValueError for an empty sample."""
        return cls(*(percentile(values, q) for q in PERCENTILES), count=len(values))


@dataclass(frozen=True)
class RequestTrace:
    """Client-side timings of one streamed generation, all on the same monotonic clock, in seconds.

    Attributes:
        sent_at: When the request was sent.
        chunk_arrivals: When each token chunk arrived, in order.
        chunk_token_counts: Tokens in each chunk (same length as `chunk_arrivals`).
        completed_at: When the completion message arrived.
        prompt_tokens: The worker's prompt token count (its tokenizer, chat template included).
        completion_tokens: The worker's generated token count.
    """

    sent_at: float
    chunk_arrivals: tuple[float, ...]
    chunk_token_counts: tuple[int, ...]
    completed_at: float
    prompt_tokens: int
    completion_tokens: int

    def __post_init__(self) -> None:
        if len(self.chunk_arrivals) != len(self.chunk_token_counts):
            raise ValueError("chunk_arrivals and chunk_token_counts differ in length")
        if sum(self.chunk_token_counts) != self.completion_tokens:
            raise ValueError(
                f"chunks carry {sum(self.chunk_token_counts)} tokens but the worker reports "
                f"{self.completion_tokens} completion tokens"
            )
        times = (self.sent_at, *self.chunk_arrivals, self.completed_at)
        if any(later < earlier for earlier, later in itertools.pairwise(times)):
            raise ValueError("timings are not in order (sent, chunks, completion)")

    @property
    def ttft_ms(self) -> float | None:
        """Time to first token in ms; None when no token was generated."""
        return (self.chunk_arrivals[0] - self.sent_at) * 1000.0 if self.chunk_arrivals else None

    @property
    def e2e_latency_ms(self) -> float:
        return (self.completed_at - self.sent_at) * 1000.0

    @property
    def itl_ms(self) -> list[float]:
        """One ITL sample per token after the first chunk, in ms (see the module docstring)."""
        samples: list[float] = []
        for index in range(1, len(self.chunk_arrivals)):
            gap_ms = (self.chunk_arrivals[index] - self.chunk_arrivals[index - 1]) * 1000.0
            tokens = self.chunk_token_counts[index]
            samples.extend([gap_ms / tokens] * tokens)
        return samples

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first, in ms; None for fewer than two tokens."""
        if self.completion_tokens < 2:
            return None
        return (self.chunk_arrivals[-1] - self.chunk_arrivals[0]) * 1000.0 / (self.completion_tokens - 1)


@dataclass(frozen=True)
class LevelSummary:
    """Latency and throughput of a batch of requests run at one concurrency level.

    Attributes:
        concurrency: Requests kept in flight.
        requests: Requests completed.
        wall_s: From the first request sent to the last completed, s.
        ttft_ms, itl_ms, tpot_ms, e2e_latency_ms: Distributions over requests (ITL: over tokens), ms.
        output_tokens_per_s: Generated tokens / wall_s.
        requests_per_s: Requests / wall_s.
        prefill_tokens_per_s: Median over requests of prompt tokens / TTFT (the prompt is processed before the
            first token; TTFT also holds the scheduling and network time, so this is a lower bound), tokens/s.
    """

    concurrency: int
    requests: int
    wall_s: float
    ttft_ms: Distribution
    itl_ms: Distribution
    tpot_ms: Distribution
    e2e_latency_ms: Distribution
    output_tokens_per_s: float
    requests_per_s: float
    prefill_tokens_per_s: float


def summarize_level(concurrency: int, traces: Sequence[RequestTrace]) -> LevelSummary:
    """Summarises the traces of one concurrency level.

    Raises:
        ValueError: no traces, a request generated no token, or no request generated two tokens (no ITL sample):
            ask for more output tokens.
    """
    if not traces:
        raise ValueError(f"concurrency {concurrency}: no completed requests")
    ttfts = [trace.ttft_ms for trace in traces]
    if any(ttft is None for ttft in ttfts):
        raise ValueError(f"concurrency {concurrency}: a request generated no token")
    itls = [sample for trace in traces for sample in trace.itl_ms]
    tpots = [tpot for trace in traces if (tpot := trace.tpot_ms) is not None]
    if not itls or not tpots:
        raise ValueError(f"concurrency {concurrency}: no request generated two tokens, so ITL is not measured")
    wall_s = max(trace.completed_at for trace in traces) - min(trace.sent_at for trace in traces)
    if wall_s <= 0:
        raise ValueError(f"concurrency {concurrency}: the requests took no measurable time")
    output_tokens = sum(trace.completion_tokens for trace in traces)
    return LevelSummary(
        concurrency=concurrency,
        requests=len(traces),
        wall_s=wall_s,
        ttft_ms=Distribution.of(ttfts),  # type: ignore[arg-type]  # None excluded above
        itl_ms=Distribution.of(itls),
        tpot_ms=Distribution.of(tpots),
        e2e_latency_ms=Distribution.of([trace.e2e_latency_ms for trace in traces]),
        output_tokens_per_s=output_tokens / wall_s,
        requests_per_s=len(traces) / wall_s,
        prefill_tokens_per_s=percentile(
            [1000.0 * trace.prompt_tokens / ttft for trace, ttft in zip(traces, ttfts, strict=True)], 50.0),  # type: ignore[operator]
    )


def saturation(levels: Sequence[LevelSummary]) -> LevelSummary:
    """The level with the highest output tokens/s: the measured throughput at saturation.

    Raises:
        ValueError: no levels.
    """
    if not levels:
        raise ValueError("no concurrency levels measured")
    return max(levels, key=lambda level: (level.output_tokens_per_s, -level.concurrency))
