"""PNG chart of latency against throughput per pair, one point per concurrency level (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt

from tools.profiler.document import PairFigures


def write_chart(figures: Sequence[PairFigures], path: Path) -> Path:
    """Writes two panels (e2e latency and TTFT, p50 solid and p99 dashed, against output tokens/s) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    try:
        for pair in figures:
            throughput = [level.output_tokens_per_s for level in pair.levels]
            for axis, metric in zip(axes, ("e2e_latency_ms", "ttft_ms"), strict=True):
                p50 = [getattr(level, metric).p50 for level in pair.levels]
                p99 = [getattr(level, metric).p99 for level in pair.levels]
                (line,) = axis.plot(throughput, p50, marker="o", label=f"{pair.profile.name} p50")
                axis.plot(throughput, p99, marker="x", linestyle="--", color=line.get_color(),
                          label=f"{pair.profile.name} p99")
                for level, x, y in zip(pair.levels, throughput, p50, strict=True):
                    axis.annotate(f"c={level.concurrency}", (x, y), textcoords="offset points", xytext=(4, 4),
                                  fontsize=8)
        for axis, title in zip(axes, ("End-to-end latency", "Time to first token"), strict=True):
            axis.set_title(f"{title} vs throughput")
            axis.set_xlabel("output tokens/s")
            axis.set_ylabel("ms")
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path
