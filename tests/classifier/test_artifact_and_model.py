"""The shipped artifact: verified round trip, corruption detection, and what the loaded model answers."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from core import vocabulary
from core.classifier_model import artifact
from core.classifier_model.artifact import ArtifactError, load_artifact, write_weights
from core.classifier_model.model import ClassifierModel
from core.classifier_model.reference_tokenizer import count_tokens, default_tokenizer
from core.vocabulary import TaskIntent
from quantmesh.common.v1 import common_pb2
from tools.classifier_training.training_data import INTENTS

GSM8K_LIKE = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
MMLU_LIKE = "Which gas is most abundant in air?\nA. Oxygen\nB. Nitrogen\nC. Argon\nD. Carbon dioxide\nAnswer:"


@pytest.fixture(scope="module")
def model() -> ClassifierModel:
    return ClassifierModel.load(artifact.DEFAULT_ARTIFACT_DIR)


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "artifact"
    shutil.copytree(artifact.DEFAULT_ARTIFACT_DIR, target)
    return target


def test_weights_round_trip_with_identical_bytes(tmp_path: Path) -> None:
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1.5, -2.0])}
    write_weights(tmp_path / "one.npz", arrays)
    write_weights(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz") as loaded:
        for name, value in arrays.items():
            np.testing.assert_array_equal(loaded[name], value)


def test_shipped_artifact_is_small_and_versioned() -> None:
    loaded = load_artifact(artifact.DEFAULT_ARTIFACT_DIR)
    assert loaded.model_version.startswith("clf-")
    size = sum(path.stat().st_size for path in artifact.DEFAULT_ARTIFACT_DIR.iterdir())
    assert size < 5 * 2**20


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    weights = directory / artifact.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact(directory)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / artifact.TOKENIZER).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(directory)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nowhere")


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    loaded = load_artifact(directory)
    arrays = dict(loaded.arrays, intent_bias=np.zeros(3))
    write_weights(directory / artifact.WEIGHTS, arrays)
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("files", "format_version")}
    artifact.write_manifest(directory, manifest)
    with pytest.raises(ArtifactError, match="intent_bias has shape"):
        load_artifact(directory)


def test_classification_of_a_math_word_problem(model: ClassifierModel) -> None:
    result = model.classify(GSM8K_LIKE)
    assert result.intent == "math"
    assert 0 <= result.needs_strong_model_probability <= 1
    assert result.tier == model.thresholds.tier(result.needs_strong_model_probability)
    assert sum(result.tier_probabilities.values()) == pytest.approx(1.0)
    assert result.estimated_input_tokens == count_tokens(GSM8K_LIKE)
    assert 0 < result.numeric_token_share < 0.2  # "48" among ~40 tokens
    assert result.model_version == model.model_version


def test_multiple_choice_question(model: ClassifierModel) -> None:
    assert model.classify(MMLU_LIKE).intent == "question_answering"


def test_numeric_share_of_numbers_only() -> None:
    tokenizer = default_tokenizer()
    assert tokenizer.numeric_token_share(tokenizer.encode("12 345 6789 0")) == 1.0
    assert tokenizer.numeric_token_share(tokenizer.encode("no digits here")) == 0.0
    assert tokenizer.numeric_token_share([]) == 0.0


def test_every_intent_and_tier_converts_to_proto(model: ClassifierModel) -> None:
    assert tuple(model.intents) == INTENTS
    assert {vocabulary.to_proto(TaskIntent(name)) for name in INTENTS} == set(common_pb2.TaskIntent.values()) - {0}
    message = model.classify(MMLU_LIKE).to_proto()
    assert message.intent == common_pb2.TASK_INTENT_QUESTION_ANSWERING
    assert {p.tier for p in message.tier_probabilities} == {1, 2, 3}
    assert message.model_version == model.model_version


def test_a_batch_gives_the_answers_of_one_text_at_a_time(model: ClassifierModel) -> None:
    texts = [
        GSM8K_LIKE,
        MMLU_LIKE,
        "hi",
        "Écris un poème sur l'été à Zürich ☀️",
        "def f(x):\n    return {k: v for k, v in x.items() if v}\n# why does this fail?",
        " ".join([GSM8K_LIKE] * 20),
        "",
    ]
    one_by_one = [model.classify(text) for text in texts]
    assert model.classify_batch(texts) == one_by_one  # bit for bit, whatever the batch around a text
    assert model.classify_batch(texts[::-1]) == one_by_one[::-1]
    assert model.classify_batch([]) == []


def test_encode_batch_matches_encode() -> None:
    tokenizer = default_tokenizer()
    texts = [GSM8K_LIKE, MMLU_LIKE, "", "naïve café ☕ 12,345.67"]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(text) for text in texts]
