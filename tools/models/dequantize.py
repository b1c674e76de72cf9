"""Turn a GGUF file into an unquantized bf16 safetensors checkpoint that vLLM loads (vLLM on CPU has no GGUF loader).

transformers reads the GGUF file, dequantizes every tensor (`gguf.dequantize`) and casts it to bf16; the model is
saved with its tokenizer and the chat template the GGUF file carries. Loading with `GgufConfig(dequantize=True)`
matters: without it transformers keeps a GGUF quantizer on the model and refuses to save it. The checkpoint is
written to a temporary directory beside the target and renamed at the end, so an interrupted run leaves nothing
half-written; `quantmesh_model.json` in it records where it came from (source, GGUF file and its SHA-256, license),
and `golden_prompts.json` the source's golden prompts, which the worker checks before it reports SERVING.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from tools.models.catalog import ModelSource

PROVENANCE_FILE = "quantmesh_model.json"
GOLDEN_FILE = "golden_prompts.json"  # where the worker looks for its start-up check by default


def bf16_dir(source: ModelSource, models_dir: Path) -> Path:
    """Where `dequantize` writes the source's bf16 checkpoint."""
    return models_dir / source.name / "bf16"


def dequantize(source: ModelSource, gguf: Path, target: Path) -> Path:
    """Writes the bf16 checkpoint of `gguf` to `target` (skipped when a complete one is there) and returns it.

    Raises:
        FileNotFoundError: `gguf` does not exist.
        ValueError: the GGUF file carries no chat template (the worker applies it to chat requests).
    """
    if (target / PROVENANCE_FILE).is_file():
        return target
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: no such GGUF file (run `quantmesh models fetch {source.name}`)")
    import torch  # heavy, and only this step needs them
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise ValueError(f"{gguf}: the GGUF file carries no chat template")
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
    )
    # The chat template's end-of-turn token ends generation too (GGUF files name a single eos id).
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = [tokenizer.eos_token_id] + ([end_of_turn] if isinstance(end_of_turn, int) and end_of_turn >= 0 else [])
    model.generation_config.eos_token_id = list(dict.fromkeys(eos))
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial, save_jinja_files=False)
    if source.golden:
        (partial / GOLDEN_FILE).write_text(json.dumps([asdict(golden) for golden in source.golden], indent=2) + "\n")
    (partial / PROVENANCE_FILE).write_text(json.dumps({
        "model": source.name,
        "upstream": source.upstream,
        "weights": "bf16, dequantized from GGUF with transformers",
        "gguf_file": source.gguf_file,
        "gguf_type": source.gguf_type,
        "gguf_sha256": source.sha256,
        "license": source.license,
        "license_source": source.license_source,
    }, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
