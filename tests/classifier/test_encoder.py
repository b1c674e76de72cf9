"""The pretrained encoders from their wheels: checksums, truncation, and the same answer alone or in a batch."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.classifier_model import artifact
from core.classifier_model.artifact import FINETUNED_ARTIFACT_DIR, MINILM_ARTIFACT_DIR, ArtifactError
from core.classifier_model.encoder import (
    ENCODERS,
    MINILM_MAX_TOKENS,
    EncoderSpec,
    encoder_files,
    load_encoder,
)
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.train import TRAINED_LAYERS_FILE

TEXTS = ["What is 7 times 8?", "hi", "", "Écris un poème sur l'été ☀️", "word " * 400]


@pytest.fixture(scope="module")
def minilm_model() -> ClassifierModel:
    return ClassifierModel.load(MINILM_ARTIFACT_DIR)


def _artifact_with_encoder_checksum(tmp_path: Path, checksum: str) -> Path:
    directory = tmp_path / "artifact"
    shutil.copytree(artifact.DEFAULT_ARTIFACT_DIR, directory)
    manifest = json.loads((directory / artifact.MANIFEST).read_text())
    relative = next(iter(manifest["encoder"]["files"]))
    manifest["encoder"]["files"][relative] = checksum
    artifact.write_manifest(directory, {k: v for k, v in manifest.items() if k not in ("files", "format_version")})
    return directory


def test_the_static_encoder_gives_unit_vectors_the_same_alone_or_batched() -> None:
    encoder = load_encoder("wordllama-l2-256")
    batched = encoder.encode(TEXTS)
    assert batched.vectors.shape == (len(TEXTS), 256)
    assert batched.truncated == [False] * len(TEXTS)  # a mean over every token: no length limit
    norms = np.linalg.norm(batched.vectors, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3, 4]], 1.0)
    assert norms[2] == 0.0  # an empty text has no tokens
    for row, text in enumerate(TEXTS):
        assert np.array_equal(encoder.encode([text]).vectors[0], batched.vectors[row])


def test_an_encoder_file_that_differs_from_training_is_refused(tmp_path: Path) -> None:
    directory = _artifact_with_encoder_checksum(tmp_path, "0" * 64)
    with pytest.raises(ArtifactError, match="trained with 0000.*install wordllama==0.4.0.post1"):
        ClassifierModel.load(directory)


def test_an_unknown_or_uninstalled_encoder_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ArtifactError, match="unknown encoder 'bert-huge'"):
        load_encoder("bert-huge")
    absent = EncoderSpec("static", "quantmesh-absent-encoder", "1.0", "quantmesh_absent_encoder", ("w.bin",))
    monkeypatch.setitem(ENCODERS, "absent", absent)
    with pytest.raises(ArtifactError, match="needs the wheel quantmesh-absent-encoder==1.0, which is not installed"):
        encoder_files("absent")


def test_the_contextual_encoder_truncates_long_questions_and_says_so(minilm_model: ClassifierModel) -> None:
    long_question = "Why is the sky blue? " * 80  # about 480 word pieces
    result = minilm_model.classify(long_question)
    assert result.encoder_truncated is True
    assert result.estimated_input_tokens > MINILM_MAX_TOKENS  # the rest of the answer still covers all of it
    assert minilm_model.classify("Why is the sky blue?").encoder_truncated is False
    assert minilm_model.classify_batch(TEXTS) == [minilm_model.classify(text) for text in TEXTS]


def test_the_contextual_artifact_names_its_encoder_and_reads_intents(minilm_model: ClassifierModel) -> None:
    assert minilm_model.encoder_name == "minilm-l6-v2"
    assert minilm_model.classify("Write a Python function that reverses a list.").intent == "code"
    assert minilm_model.classify("Write a haiku about autumn rain.").intent == "creative"
    assert minilm_model.classify("Extract every date in this email: we met on 3 May and 9 June.").intent == "extraction"


def test_fine_tuned_layers_replace_the_wheels_and_ill_fitting_ones_are_refused(tmp_path: Path) -> None:
    layers = FINETUNED_ARTIFACT_DIR / TRAINED_LAYERS_FILE
    plain = load_encoder("minilm-l6-v2").encode(TEXTS[:2]).vectors
    tuned = load_encoder("minilm-l6-v2", trained_layers=layers).encode(TEXTS[:2]).vectors
    assert tuned.shape == plain.shape == (2, 384)
    assert not np.allclose(tuned, plain, atol=1e-3)  # the fine-tuned layers are in use
    wrong_shape = tmp_path / "wrong_shape.safetensors"
    save_file({"encoder.layer.5.output.dense.weight": np.zeros((4, 4), np.float16)}, str(wrong_shape))
    with pytest.raises(ArtifactError, match=r"encoder.layer.5.output.dense.weight has shape \(4, 4\)"):
        load_encoder("minilm-l6-v2", trained_layers=wrong_shape)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"encoder.layer.9.output.dense.weight": np.zeros((4, 4), np.float16)}, str(unknown))
    with pytest.raises(ArtifactError, match="no such tensor"):
        load_encoder("minilm-l6-v2", trained_layers=unknown)
    with pytest.raises(ArtifactError, match="is static"):
        load_encoder("wordllama-l2-256", trained_layers=wrong_shape)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"not a safetensors file")
    with pytest.raises(ArtifactError, match="cannot be read"):
        load_encoder("minilm-l6-v2", trained_layers=damaged)
