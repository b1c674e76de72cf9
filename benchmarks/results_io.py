"""Writes benchmark results in the shared format: benchmarks/results/<name>.json.

Format: {"name", "when" (ISO 8601 UTC), "machine" (cores, memory, CPU, Python), "figures": {figure: number},
"details": {...}}. Figures keep the names their issue gives them so that runs can be compared over time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Describes the machine the benchmark ran on."""
    memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_bytes / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, figures: dict[str, float], details: dict[str, Any] | None = None) -> Path:
    """Writes `benchmarks/results/<name>.json` and returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "name": name,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
        "details": details or {},
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path
