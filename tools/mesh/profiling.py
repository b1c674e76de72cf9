"""Profiles the mesh's own workers when its profile document is missing or stale, and reuses it otherwise.

The document (`profiles.file`) is written by the profiler (`tools.profiler.cli`, the same run as `quantmesh
profile`), beside its JSON report (every graded answer), its PNG chart and a provenance file
`<file>.provenance.json` naming what was measured: the eval set (path and SHA-256), each pair and the SHA-256 of its
checkpoint's provenance file, the price and the sweep. A later `quantmesh up` reuses the document only when that
provenance matches (the same eval set, price and sweep, and each of its pairs measured on the same checkpoint), so
a profile is never routed from after its eval set or its checkpoints changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tools.mesh.mesh_config import MeasureConfig
from tools.models.dequantize import PROVENANCE_FILE
from tools.profiler import cli as profiler_cli


class ProfilingError(RuntimeError):
    """The profiler failed on the mesh's workers; nothing was written (the profiler's message says why)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance_path(document: Path) -> Path:
    return document.with_name(document.name + ".provenance.json")


def expected_provenance(measure: MeasureConfig, pairs: Sequence[tuple[str, str, str]]) -> dict:
    """What a reusable document must have been measured on. `pairs` are (model_id, quantization, model path)."""
    def checkpoint(path: str) -> str:
        provenance = Path(path) / PROVENANCE_FILE
        return _sha256(provenance) if provenance.is_file() else path

    return {
        "eval_sha256": _sha256(measure.eval),
        "pairs": sorted(({"model_id": model_id, "quantization": quantization, "checkpoint": checkpoint(path)}
                         for model_id, quantization, path in pairs),
                        key=lambda pair: (pair["model_id"], pair["quantization"])),
        "price_per_hour_usd": measure.price_per_hour_usd,
        "concurrency": list(measure.concurrency),
        "requests_per_level": measure.requests_per_level,
        "load_output_tokens": measure.load_output_tokens,
    }


def is_current(document: Path, expected: dict) -> bool:
    """True when `document` exists and its provenance file records the expected eval set, price and sweep, and every
    expected pair with the same checkpoint (it may hold more pairs: each pair is measured on its own, so a mesh that
    runs fewer of them can reuse it)."""
    record = provenance_path(document)
    if not document.is_file() or not record.is_file():
        return False
    recorded = json.loads(record.read_text(encoding="utf-8"))
    same_run = all(recorded.get(key) == value for key, value in expected.items() if key != "pairs")
    measured = {(pair["model_id"], pair["quantization"], pair["checkpoint"]) for pair in recorded.get("pairs", [])}
    return same_run and all((pair["model_id"], pair["quantization"], pair["checkpoint"]) in measured
                            for pair in expected["pairs"])


def measure_profiles(document: Path, measure: MeasureConfig, addresses: Sequence[str],
                     pairs: Sequence[tuple[str, str, str]], log: Callable[[str], None] = print) -> None:
    """Writes `document` (and its report, chart and provenance) by profiling the workers at `addresses`, unless a
    current one is there.

    Raises:
        ProfilingError: the profiler failed (it wrote nothing).
    """
    expected = expected_provenance(measure, pairs)
    if is_current(document, expected):
        log(f"profiles: reusing {document} (same eval set, checkpoints and sweep; {provenance_path(document).name})")
        return
    log(f"profiles: measuring {len(addresses)} pair(s) on {measure.eval.name} (graded answers, then the load sweep)")
    argv = [arg for address in addresses for arg in ("--worker", address)] + [
        "--eval", str(measure.eval), "--price-per-hour-usd", str(measure.price_per_hour_usd),
        "--concurrency", ",".join(str(level) for level in measure.concurrency),
        "--requests-per-level", str(measure.requests_per_level),
        "--load-output-tokens", str(measure.load_output_tokens),
        "--accuracy-concurrency", str(measure.accuracy_concurrency), "--timeout-s", str(measure.timeout_s),
        "--output", str(document),
    ]
    code = profiler_cli.main(argv)
    if code != profiler_cli.EXIT_OK:
        raise ProfilingError(f"the profiler exited with {code} (its message is above); no profile was written")
    # Paths relative to the document, so that a committed document's provenance holds on every machine.
    record = expected | {"eval": os.path.relpath(measure.eval, document.parent),
                         "report": document.with_suffix(".report.json").name}
    provenance_path(document).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
