"""Labels, contamination filtering, split hygiene and the labelled-traffic format, on the shared data."""

import json
from pathlib import Path

import pytest

from tools.classifier_training import data
from tools.classifier_training.intent_templates import TEMPLATE_SPLITS, TEMPLATES
from tools.classifier_training.training_data import build_training_sets, load_traffic, routed_prompt_intent
from tools.paths import DATA_DIR


@pytest.fixture(scope="module")
def sets():
    return build_training_sets(DATA_DIR, 20240601)


def test_needs_strong_label() -> None:
    def prompt(weak: bool, strong: bool) -> data.RoutedPrompt:
        return data.RoutedPrompt("gsm8k", "", "x", weak, strong)

    assert prompt(False, True).needs_strong
    assert not prompt(True, True).needs_strong
    assert not prompt(False, False).needs_strong
    assert not prompt(True, False).needs_strong


def test_contaminated_prompts_are_dropped() -> None:
    folder = DATA_DIR / "routellm"
    for loader, path in (
        (data.load_gsm8k, folder / "gsm8k" / "contaminated_prompts.jsonl"),
        (data.load_mmlu, folder / "mmlu_contaminated_prompts.jsonl"),
    ):
        contaminated = {json.loads(line)["eval_prompt"].strip() for line in path.read_text().splitlines()}
        kept = {p.prompt.strip() for p in loader(DATA_DIR)}
        assert contaminated and not contaminated & kept


def test_gsm8k_label_rate_matches_the_data_readme() -> None:
    prompts = data.load_gsm8k(DATA_DIR)
    assert sum(p.needs_strong for p in prompts) / len(prompts) == pytest.approx(0.290, abs=0.01)


def test_no_text_is_in_two_splits(sets) -> None:
    for by_split in (
        {name: {p.prompt for p in prompts} for name, prompts in sets.complexity.items()},
        {name: {e.text for e in examples} for name, examples in sets.intent.items()},
    ):
        assert not by_split["train"] & by_split["test"]
        assert not by_split["train"] & by_split["validation"]
        assert not by_split["validation"] & by_split["test"]


def test_templates_are_held_out_between_splits(sets) -> None:
    positions = [set(p) for p in TEMPLATE_SPLITS.values()]
    assert (
        not positions[0] & positions[1]
        and not positions[0] & positions[2]
        and not positions[1] & positions[2]
    )
    assert set().union(*positions) == set(range(len(next(iter(TEMPLATES.values())))))
    for split, examples in sets.intent.items():
        used = {int(e.origin.rsplit(":", 1)[1]) for e in examples if e.origin.startswith("template:")}
        assert used <= set(TEMPLATE_SPLITS[split])


def test_routed_prompt_intents() -> None:
    assert routed_prompt_intent(data.RoutedPrompt("gsm8k", "", "x", True, True)) == "math"
    assert (
        routed_prompt_intent(data.RoutedPrompt("mmlu", "high_school_mathematics", "x", True, True)) == "math"
    )
    assert routed_prompt_intent(data.RoutedPrompt("mmlu", "formal_logic", "x", True, True)) == "reasoning"
    assert routed_prompt_intent(data.RoutedPrompt("mmlu", "anatomy", "x", True, True)) == "question_answering"


def test_traffic_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    path.write_text(
        '{"text": "refund my order", "intent": "chat"}\n\n'
        '{"text": "prove it", "weak_correct": false, "strong_correct": true}\n'
    )
    prompts, examples = load_traffic(path)
    assert [(p.dataset, p.needs_strong) for p in prompts] == [("traffic", True)]
    assert [(e.intent, e.origin) for e in examples] == [("chat", "traffic")]
    path.write_text('{"text": "x", "intent": "chat"}\n{"text": "y", "weak_correct": true}\n')
    with pytest.raises(ValueError, match=r"traffic.jsonl:2"):
        load_traffic(path)
