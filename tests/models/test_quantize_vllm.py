"""`quantmesh quantize` on a real model: SmolLM2-135M-Instruct's W8A8 and W4A16 (group 64) pairs are made by
llmcompressor in the quantize virtualenv and published only after a real vLLM worker passed its golden check on
them; a checkpoint that fails the check is refused with the prompts that differ, and nothing is published. On a CPU
whose vLLM build has no W4A16 kernel (no AVX-512), the W4A16 pair is refused and nothing is published."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools.models.catalog import SMOLLM2_135M
from tools.models.dequantize import GOLDEN_FILE, PROVENANCE_FILE, bf16_dir, dequantize
from tools.models.fetch import fetch_gguf, gguf_path
from tools.models.quantize import QuantizeError, quantize, quantized_dir
from tools.paths import MODEL_CACHE_DIR, WHEEL_CACHE_DIR

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def base() -> Path:
    return dequantize(SMOLLM2_135M, fetch_gguf(SMOLLM2_135M, MODEL_CACHE_DIR, WHEEL_CACHE_DIR),
                      bf16_dir(SMOLLM2_135M, MODEL_CACHE_DIR))


def _models_dir(tmp_path: Path, base: Path, *, golden: list[dict] | None = None) -> Path:
    """A models folder holding the cached GGUF file and a copy of the bf16 base (with other golden prompts)."""
    models = tmp_path / "models"
    gguf = gguf_path(SMOLLM2_135M, models)
    gguf.parent.mkdir(parents=True)
    gguf.symlink_to(gguf_path(SMOLLM2_135M, MODEL_CACHE_DIR))
    copy = bf16_dir(SMOLLM2_135M, models)
    shutil.copytree(base, copy)
    if golden is not None:
        (copy / GOLDEN_FILE).write_text(json.dumps(golden))
    return models


@pytest.mark.parametrize(("scheme", "compressed_format"), [("w8a8", "int-quantized"), ("w4a16", "pack-quantized")])
def test_a_quantized_pair_is_published_once_its_golden_check_passes(tmp_path: Path, base: Path, scheme: str,
                                                                    compressed_format: str) -> None:
    models = _models_dir(tmp_path, base)
    log = tmp_path / "logs" / f"golden-{SMOLLM2_135M.name}-{scheme}.log"
    try:
        checkpoint = quantize(SMOLLM2_135M, scheme, models, WHEEL_CACHE_DIR, tmp_path / "logs")
    except QuantizeError as error:
        # vLLM's CPU build without AVX-512 lacks the W4A16 kernel: the worker cannot serve the pair, so it is refused.
        if scheme != "w4a16" or "has no attribute 'cpu_gemm_wna16'" not in log.read_text():
            raise
        assert "gave no golden-check verdict" in str(error) and str(log) in str(error)
        assert scheme not in {p.name for p in (models / SMOLLM2_135M.name).iterdir()}  # nothing published
        return
    assert checkpoint == quantized_dir(SMOLLM2_135M, models, scheme)
    config = json.loads((checkpoint / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == compressed_format
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"]) == ((8, None) if scheme == "w8a8" else (4, 64))
    provenance = json.loads((checkpoint / PROVENANCE_FILE).read_text())
    assert provenance["quantization"] == scheme and "round-to-nearest" in provenance["weights"]
    assert (checkpoint / GOLDEN_FILE).read_text() == (base / GOLDEN_FILE).read_text()
    assert "golden_check_passed" in log.read_text()
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == sorted(["gguf", "bf16", scheme])


def test_a_pair_failing_its_golden_check_is_refused_with_the_prompts_and_not_published(tmp_path: Path,
                                                                                        base: Path) -> None:
    models = _models_dir(tmp_path, base, golden=[{"prompt": "The capital of France is", "expected": " Berlin"}])
    with pytest.raises(QuantizeError) as info:
        quantize(SMOLLM2_135M, "w8a8", models, WHEEL_CACHE_DIR, tmp_path / "logs")
    message = str(info.value)
    assert "failed the golden check" in message and "not published" in message
    assert "'The capital of France is': expected ' Berlin', got ' Paris" in message
    assert sorted(p.name for p in (models / SMOLLM2_135M.name).iterdir()) == ["bf16", "gguf"]
