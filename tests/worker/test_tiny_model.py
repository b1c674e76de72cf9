"""The tiny model builder: complete, cached, deterministic, and it learned the golden prompts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tools.tiny_model.build import GOLDEN_FILE, SPEC_FILE, build_tiny_model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sizes_differ_and_hold_what_vllm_loads(tiny_model_dirs: dict[str, Path]) -> None:
    sizes = {}
    for size, directory in tiny_model_dirs.items():
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors", GOLDEN_FILE):
            assert (directory / name).is_file(), f"{size}: {name} missing"
        config = json.loads((directory / "config.json").read_text())
        assert config["head_dim"] == 64  # vLLM's CPU attention rejects smaller heads
        assert "chat_template" in json.loads((directory / "tokenizer_config.json").read_text())
        sizes[size] = (directory / "model.safetensors").stat().st_size
    assert sizes["s"] < sizes["m"] < 8 * 2**20


def test_building_into_a_complete_directory_is_a_no_op(tiny_model_dirs: dict[str, Path]) -> None:
    weights = tiny_model_dirs["s"] / "model.safetensors"
    before = (weights.stat().st_mtime_ns, _digest(weights))
    build_tiny_model(tiny_model_dirs["s"], size="s")
    assert (weights.stat().st_mtime_ns, _digest(weights)) == before


def test_the_model_answers_its_golden_prompts(tiny_model_dirs: dict[str, Path]) -> None:
    transformers = pytest.importorskip("transformers")
    directory = tiny_model_dirs["m"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory)
    for golden in json.loads((directory / GOLDEN_FILE).read_text()):
        ids = tokenizer(golden["prompt"], return_tensors="pt")["input_ids"]
        output = model.generate(ids, max_new_tokens=golden["max_output_tokens"], do_sample=False)
        assert golden["expected"] in tokenizer.decode(output[0, ids.shape[1] :])


def test_the_same_seed_builds_the_same_weights(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    rebuilt = build_tiny_model(tmp_path / "again", size="s", seed=0)
    assert json.loads((rebuilt / SPEC_FILE).read_text()) == json.loads((tiny_model_dirs["s"] / SPEC_FILE).read_text())
    assert _digest(rebuilt / "model.safetensors") == _digest(tiny_model_dirs["s"] / "model.safetensors")
    assert _digest(rebuilt / "tokenizer.json") == _digest(tiny_model_dirs["s"] / "tokenizer.json")
