"""The real pairs' eval sets, built from data/: references, disjointness, and the deployed classifier's tiers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.classification import chat_text
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.train import DEFAULT_SEED
from tools.classifier_training.training_data import complexity_splits
from tools.paths import DATA_DIR
from tools.profiler.build_real_eval import BuildError, build
from tools.profiler.eval_set import EvalItem, parse_eval_lines


@pytest.fixture(scope="module")
def classifier() -> ClassifierModel:
    return ClassifierModel.load(DEFAULT_ARTIFACT_DIR)


@pytest.fixture(scope="module")
def sets(classifier: ClassifierModel) -> tuple[list[dict], list[dict]]:
    return build(DATA_DIR, (8, 5, 5), (8, 5, 5), seed=3, classifier=classifier)


def test_both_sets_parse_as_eval_sets_with_the_counts_asked(sets) -> None:
    for items in sets:
        parsed = parse_eval_lines([json.dumps(item) for item in items])
        tasks = sorted(item.id.split("-")[1] for item in parsed)
        assert tasks.count("gsm8k") == 8 and tasks.count("clinc150") == 5 and tasks.count("banking77") == 5


def test_profiling_and_held_out_items_never_share_a_source_line(sets) -> None:
    profile, heldout = sets
    assert not {item["source"] for item in profile} & {item["source"] for item in heldout}


def test_gsm8k_items_come_from_splits_the_classifier_never_trained_on(sets) -> None:
    profile, heldout = sets
    classifier_test = {p.prompt for p in complexity_splits(DATA_DIR, DEFAULT_SEED)["test"] if p.dataset == "gsm8k"}
    assert all(item["source"].startswith("gsm8k/train.jsonl:") for item in profile if "gsm8k" in item["id"])
    for item in heldout:
        if "gsm8k" in item["id"]:
            assert item["source"].startswith("gsm8k/test.jsonl:")
            question = item["messages"][0]["content"].split("\n\n", 1)[1]
            assert question in classifier_test


def test_gsm8k_references_are_the_numbers_after_the_marker(sets) -> None:
    lines = (DATA_DIR / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    for item in sets[0]:
        if "gsm8k" in item["id"]:
            answer = json.loads(lines[int(item["source"].rsplit(":", 1)[1]) - 1])["answer"]
            assert float(answer.rsplit("####", 1)[1].strip().replace(",", "")) == item["expected"]


def test_choice_items_offer_the_true_intent_under_the_expected_letter(sets) -> None:
    clinc = dict(json.loads((DATA_DIR / "clinc150" / "data_full.json").read_text())["test"])
    for item in sets[1]:
        if "clinc150" not in item["id"]:
            continue
        content = item["messages"][0]["content"]
        message = re.search(r"Message: (.*)\n", content).group(1)
        options = dict(re.findall(r"^([A-D])\. (.*)$", content, re.MULTILINE))
        assert options[item["expected"]] == clinc[message].replace("_", " ")


def test_tiers_are_the_deployed_classifiers_on_the_text_the_router_classifies(sets, classifier) -> None:
    for item in sets[0] + sets[1]:
        parsed = EvalItem.model_validate(item)
        text = chat_text((turn.role, turn.content) for turn in parsed.messages or ())
        assert classifier.classify(text).tier == parsed.tier


def test_a_gsm8k_line_without_a_reference_is_reported_by_line(tmp_path: Path, classifier) -> None:
    for entry in DATA_DIR.iterdir():
        if entry.name != "gsm8k":
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").symlink_to(DATA_DIR / "gsm8k" / "test.jsonl")
    lines = (DATA_DIR / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    broken = json.loads(lines[6])
    broken["answer"] = broken["answer"].split("####")[0]
    lines[6] = json.dumps(broken)
    (tmp_path / "gsm8k" / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BuildError, match=r"train.jsonl:7: GSM8K answer has no '#### <number>' reference"):
        build(tmp_path, (2, 1, 1), (2, 1, 1), seed=0, classifier=classifier)
