"""Load-test prompts: the eval set's own, or synthetic prompts of the requested reference-token lengths."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from tools.profiler.eval_set import EvalItem
from tools.profiler.load_prompts import from_eval_set, synthetic

TEXT = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
        "friends every day with four. How much does she make every day at the farmers' market?")


def test_eval_prompts_follow_the_eval_set() -> None:
    items = [EvalItem(id=str(i), prompt="x" * (i + 1), tier="simple", intent="chat", expected="y") for i in range(3)]
    prompts = from_eval_set(items, 300, seed=1)
    assert len(prompts) == 300 and set(Counter(p.prompt for p in prompts)) == {"x", "xx", "xxx"}
    assert prompts == from_eval_set(items, 300, seed=1)  # seeded
    with pytest.raises(ValueError):
        from_eval_set([], 3, seed=0)


def test_synthetic_prompts_have_the_requested_lengths(reference_tokenizer_path: Path) -> None:
    tokenizer = ReferenceTokenizer(reference_tokenizer_path)
    prompts = synthetic([8, 100], 20, [TEXT], tokenizer, seed=0)
    lengths = {tokenizer.count_tokens(prompt.prompt or "") for prompt in prompts}
    # Decoding then re-encoding a cut of byte-level BPE can merge a token or two at the cut.
    assert any(abs(length - 8) <= 1 for length in lengths) and any(abs(length - 100) <= 2 for length in lengths)
    assert all(prompt.prompt and prompt.prompt.split()[0] in TEXT for prompt in prompts)
    with pytest.raises(ValueError):
        synthetic([0], 1, [TEXT], tokenizer, seed=0)
