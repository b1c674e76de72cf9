"""A missing or damaged checkpoint file is refused before the engine loads it, with the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.worker.checkpoint import CheckpointError, check_checkpoint


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_model_dirs: dict[str, Path]) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dirs["s"], target)
    return target


def test_a_complete_checkpoint_and_a_hub_id_pass(checkpoint: Path) -> None:
    check_checkpoint(str(checkpoint))
    check_checkpoint("Qwen/Qwen2.5-Coder-0.5B-Instruct")  # resolved by vLLM, not here


def test_a_missing_directory_config_or_weight_file_is_named(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere: no such model directory"):
        check_checkpoint(str(checkpoint.parent / "nowhere"))
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no weight file \(\*.safetensors\)"):
        check_checkpoint(str(checkpoint))
    (checkpoint / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        check_checkpoint(str(checkpoint))


def test_a_shard_named_by_the_index_but_absent_is_named(checkpoint: Path) -> None:
    (checkpoint / "model.safetensors").rename(checkpoint / "model-00001-of-00002.safetensors")
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors: weight file missing"):
        check_checkpoint(str(checkpoint))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data[:-100], r"model.safetensors: truncated \(\d+ bytes; its header describes \d+\)"),
    (lambda data: data[:5], "model.safetensors: truncated"),
    (lambda data: data + b"\0" * 7, "model.safetensors: corrupted"),
    (lambda data: data[:8] + b"{not json" + data[17:], "model.safetensors: corrupted .its header is not JSON"),
])
def test_a_truncated_or_corrupted_weight_file_is_named(checkpoint: Path, damage, message: str) -> None:
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        check_checkpoint(str(checkpoint))
