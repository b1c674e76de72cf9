"""Checks a local checkpoint directory before the engine loads it, so that a missing or damaged file is named.

vLLM reports a missing shard or a truncated safetensors file deep inside its loader, in a spawned process, as an
"Engine core initialization failed" with the cause in another process's log. This check runs first, in the worker,
and raises `CheckpointError` naming the file: config.json must exist; the weights are the shards that
`model.safetensors.index.json` names, else every `*.safetensors` file; each must be a whole safetensors file (an
8-byte little-endian header length, a JSON header, and exactly the bytes its tensors' `data_offsets` describe: the
format's specification, https://github.com/huggingface/safetensors#format).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

INDEX_FILE = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library refuses larger headers too


class CheckpointError(ValueError):
    """The checkpoint directory is incomplete or a weight file is damaged; the message names the file."""


def looks_like_path(model: str) -> bool:
    """True for a local path ("/...", "./...", "../...", "~..."), False for a model hub id ("org/name")."""
    return model.startswith(("/", ".", "~")) or Path(model).exists()


def check_checkpoint(model: str) -> None:
    """Raises `CheckpointError` unless `model` is a hub id or a complete local checkpoint (module docstring)."""
    if not looks_like_path(model):
        return
    directory = Path(model).expanduser()
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such model directory")
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory / 'config.json'}: missing (not a Hugging Face checkpoint directory?)")
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index ({exc})") from None
        weights = [directory / shard for shard in shards]
    else:
        weights = sorted(directory.glob("*.safetensors"))
        if not weights:
            raise CheckpointError(f"{directory}: no weight file (*.safetensors)")
    for path in weights:
        check_safetensors(path)


def check_safetensors(path: Path) -> None:
    """Raises `CheckpointError` unless `path` is a whole safetensors file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file missing")
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes, not even a safetensors header)")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > MAX_HEADER_BYTES or 8 + header_bytes > size:
            raise CheckpointError(f"{path}: corrupted (its header claims {header_bytes} bytes; the file has {size})")
        try:
            header = json.loads(handle.read(header_bytes))
        except ValueError as exc:
            raise CheckpointError(f"{path}: corrupted (its header is not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted (its header is not a JSON object)")
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    expected = 8 + header_bytes + max(ends, default=0)
    if size != expected:
        raise CheckpointError(f"{path}: {'truncated' if size < expected else 'corrupted'} ({size} bytes; its header "
                              f"describes {expected})")
