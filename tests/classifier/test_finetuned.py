"""The fine-tuned MiniLM artifact (a setting): its layers are checksummed, its complexity heads read the encoder,
and its committed evaluation is what it scores now."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.classifier_model.artifact import FINETUNED_ARTIFACT_DIR, ArtifactError, load_artifact
from core.classifier_model.encoder import MINILM_MAX_TOKENS
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.evaluate import evaluate_complexity
from tools.classifier_training.splits import TEST, TRAIN
from tools.classifier_training.train import DEFAULT_SEED, TRAINED_LAYERS_FILE
from tools.classifier_training.training_data import build_training_sets
from tools.paths import DATA_DIR, REPO_ROOT

REPORT = REPO_ROOT / "tools/classifier_training/reports/minilm-finetuned/evaluation.json"
TEXTS = [
    "Natalia sold clips to 48 of her friends in April, and half as many in May. How many clips did she sell?",
    "Which gas makes up most of Earth's atmosphere?\nA. Oxygen\nB. Nitrogen\nC. Argon\nD. Carbon dioxide",
    "You are a helpful assistant.\n\nQ: What is 2 + 2?\nA: 4\n\nQ: What is 12 * 13?\nA:",
    "Why is the sky blue? " * 80,  # past the encoder's 256 word pieces
    "hi",
]


@pytest.fixture(scope="module")
def model() -> ClassifierModel:
    return ClassifierModel.load(FINETUNED_ARTIFACT_DIR)


def test_its_complexity_heads_read_the_fine_tuned_encoder(model: ClassifierModel) -> None:
    loaded = load_artifact(FINETUNED_ARTIFACT_DIR)
    assert loaded.trained_layers_path == FINETUNED_ARTIFACT_DIR / TRAINED_LAYERS_FILE
    weights = loaded.arrays["complexity_encoder_weights"]
    assert weights.shape == (2, 384)
    assert np.all(np.abs(weights).sum(axis=1) > 0)  # both heads, open-ended and multiple-choice
    assert model.encoder_name == "minilm-l6-v2"


def test_a_batch_gives_each_text_its_own_answer_truncated_or_not(model: ClassifierModel) -> None:
    batched = model.classify_batch(TEXTS)
    assert batched == [model.classify(text) for text in TEXTS]
    assert [c.encoder_truncated for c in batched] == [False, False, False, True, False]
    assert batched[3].estimated_input_tokens > MINILM_MAX_TOKENS
    assert batched[2].question_focused  # the worked example is set aside


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:-1] + b"\0"), "is corrupt"),
        (Path.unlink, "is missing"),
    ],
    ids=["damaged", "missing"],
)
def test_a_damaged_or_missing_layers_file_is_refused(tmp_path: Path, damage, message: str) -> None:
    directory = tmp_path / "artifact"
    shutil.copytree(FINETUNED_ARTIFACT_DIR, directory)
    damage(directory / TRAINED_LAYERS_FILE)
    with pytest.raises(ArtifactError, match=f"{TRAINED_LAYERS_FILE} {message}"):
        ClassifierModel.load(directory)


def test_the_committed_gsm8k_figures_are_what_it_scores_now(model: ClassifierModel) -> None:
    committed = json.loads(REPORT.read_text())
    assert committed["model_version"] == model.model_version
    sets = build_training_sets(DATA_DIR, DEFAULT_SEED)
    base_rate = float(np.mean([p.needs_strong for p in sets.complexity[TRAIN] if p.dataset == "gsm8k"]))
    fresh, _ = evaluate_complexity(
        model, [p for p in sets.complexity[TEST] if p.dataset == "gsm8k"], base_rate
    )
    assert fresh["classifier"] == pytest.approx(committed["complexity"]["gsm8k"]["classifier"])
    assert fresh["classifier"]["roc_auc"] > fresh["length_baseline"]["roc_auc"]
    assert fresh["classifier"]["apgr"] > fresh["length_baseline"]["apgr"]
