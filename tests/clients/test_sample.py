"""The main job's prompt sample: held out from the Classifier's training, deterministic, interleaved."""

from __future__ import annotations

import pytest

from tools.classifier_training.splits import TRAIN, VALIDATION
from tools.classifier_training.training_data import complexity_splits
from tools.mesh.sample import SOURCES, held_out_prompts, sample_prompts
from tools.paths import DATA_DIR


def test_sample_is_deterministic_interleaved_and_sized() -> None:
    counts = {"gsm8k": 2, "mmlu": 2, "clinc150": 2, "mt_bench": 2}
    first = sample_prompts(DATA_DIR, counts, seed=0, split_seed=0)
    assert first == sample_prompts(DATA_DIR, counts, seed=0, split_seed=0)
    assert [p.source for p in first] == list(SOURCES) * 2
    assert first != sample_prompts(DATA_DIR, counts, seed=1, split_seed=0)
    assert len({p.text for p in first}) == len(first)


def test_benchmark_prompts_come_from_the_classifier_test_split_only() -> None:
    splits = complexity_splits(DATA_DIR, 0)
    seen_in_training = {p.prompt for p in splits[TRAIN]} | {p.prompt for p in splits[VALIDATION]}
    for source in ("gsm8k", "mmlu"):
        held_out = held_out_prompts(DATA_DIR, source, 0)
        assert held_out and not seen_in_training & {p.text for p in held_out}


def test_clinc150_prompts_are_in_scope_test_texts() -> None:
    prompts = held_out_prompts(DATA_DIR, "clinc150", 0)
    assert len(prompts) == 4500 and all(p.label != "oos" for p in prompts)


def test_asking_for_more_than_is_held_out_or_an_unknown_source_fails() -> None:
    with pytest.raises(ValueError, match="only"):
        sample_prompts(DATA_DIR, {"mt_bench": 10_000}, seed=0, split_seed=0)
    with pytest.raises(ValueError, match="unknown source"):
        held_out_prompts(DATA_DIR, "imdb", 0)
