"""Labels from our own pairs' graded answers: both file formats, the items they share, and a pair they lack."""

import json
from pathlib import Path

import pytest

from tools.classifier_training import local_pairs


def test_profiler_reports_and_answer_files_give_the_same_kind_of_grades() -> None:
    weak = local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.WEAK_PAIR)
    strong = local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.STRONG_PAIR)
    assert len(weak) == len(strong) == 140
    heldout_weak, heldout_strong = (
        local_pairs.load_graded(path, pair)
        for path, pair in zip(local_pairs.HELDOUT_GRADED, (local_pairs.WEAK_PAIR, local_pairs.STRONG_PAIR), strict=True)
    )
    assert set(heldout_weak) == set(heldout_strong) and len(heldout_weak) == 200
    assert not set(weak) & set(heldout_weak)  # profiling and held-out items are different items


def test_examples_carry_the_text_the_router_classifies_and_both_grades() -> None:
    weak = local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.WEAK_PAIR)
    strong = local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.STRONG_PAIR)
    examples = local_pairs.pair_examples(local_pairs.PROFILING_EVAL, weak, strong)
    assert len(examples) == 140
    for example in examples:
        assert example.text.startswith("user: ")
        assert example.needs_larger_pair == (strong[example.item_id] and not weak[example.item_id])


def test_a_file_without_the_pair_is_refused(tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"pair": "other/none", "item_id": "x", "correct": True}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no graded answer of the pair qwen2.5-coder-0.5b-instruct/w8a8"):
        local_pairs.load_graded(answers, local_pairs.WEAK_PAIR)
