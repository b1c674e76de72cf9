"""The committed evaluation report is what the shipped artifact scores now, and it beats both baselines."""

import json
from pathlib import Path

import pytest

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from tools.classifier_training.evaluate import REPORTS_DIR, evaluate
from tools.paths import DATA_DIR


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return evaluate(DATA_DIR, DEFAULT_ARTIFACT_DIR, tmp_path_factory.mktemp("evaluation"))


def test_committed_report_matches_a_fresh_evaluation(report: dict) -> None:
    committed = json.loads((REPORTS_DIR / "evaluation.json").read_text())
    assert committed["model_version"] == report["model_version"]
    assert committed["figures"] == pytest.approx(report["figures"])
    assert (REPORTS_DIR / "routing_curve.png").stat().st_size > 10_000


@pytest.mark.parametrize("dataset", ["gsm8k", "mmlu"])
def test_routing_beats_length_and_random(report: dict, dataset: str) -> None:
    metrics = report["complexity"][dataset]
    assert metrics["classifier"]["apgr"] > metrics["length_baseline"]["apgr"]
    assert metrics["classifier"]["apgr"] > metrics["random_router"]["apgr"]
    assert metrics["classifier"]["cpt_50"] < metrics["random_router"]["cpt_50"]
    assert metrics["classifier"]["roc_auc"] > metrics["random_router"]["roc_auc"]


def test_issue_targets(report: dict, tmp_path: Path) -> None:
    assert report["figures"]["gsm8k_apgr"] >= 0.60
    assert report["figures"]["intent_macro_f1"] > 1 / len(report["intent"]["per_intent"])  # far above chance
    for dataset, labels in (("clinc150", 150), ("banking77", 77)):  # the encoder's probes: far above chance too
        assert report["probes"][dataset]["labels"] == labels
        assert report["figures"][f"{dataset}_accuracy"] > 0.5


def test_intent_reaches_its_target_with_the_encoder(report: dict) -> None:
    assert report["figures"]["intent_macro_f1"] >= 0.90


def test_wrapping_stays_within_the_stated_tolerance(report: dict) -> None:
    tolerance = report["wrapping"]["tolerance"]
    assert report["figures"]["wrapping_score_shift_max"] < tolerance["score_shift_max"]
    assert report["figures"]["wrapping_tier_steps_max"] <= tolerance["tier_steps_max"]
    for by_dataset in report["wrapping"]["by_wrapping"].values():
        assert all(d["question_focused_share"] == 1.0 for d in by_dataset.values())


def test_local_pairs_are_graded_on_both_pairs_for_every_held_out_item(report: dict) -> None:
    pairs = report["local_pairs"]
    assert pairs["heldout_items"] == 200 and pairs["train_items"] == 140
    assert set(pairs["routers"]) == {"classifier", "own_pairs_head", "length_baseline", "random_router"}
    assert pairs["routers"]["random_router"]["apgr"] == pytest.approx(0.5)
    assert pairs["weak_accuracy"] < pairs["strong_accuracy"]
