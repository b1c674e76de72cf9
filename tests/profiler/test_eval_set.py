"""Eval-file parsing: valid items, and every malformed line reported with its number (nothing skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.vocabulary import ComplexityTier, TaskIntent
from tools.profiler.eval_set import EvalSetError, Scorer, load_eval_set, parse_eval_lines

GOOD = {"prompt": "What is 2+2?", "tier": "simple", "intent": "math", "scorer": "numeric", "expected": 4}


def line(**fields) -> str:
    return json.dumps({**GOOD, **fields})


def test_valid_items_and_defaults() -> None:
    items = parse_eval_lines([
        line(id="a"),
        "",
        json.dumps({"messages": [{"role": "user", "content": "Capital of France?"}], "tier": "hard",
                    "intent": "question_answering", "expected": ["Paris", "paris, france"], "stop": ["\n"]}),
        line(scorer="multiple_choice", expected="c", num_choices=5, max_output_tokens=4),
        line(scorer="regex", pattern=r"\d+", expected=None),
    ])
    assert [item.id for item in items] == ["a", "line-3", "line-4", "line-5"]
    assert items[0].expected_number == 4.0 and items[0].tier is ComplexityTier.SIMPLE and items[0].intent is TaskIntent.MATH
    assert items[1].scorer is Scorer.EXACT_MATCH and items[1].reference_text == "Capital of France?"
    assert items[2].max_output_tokens == 4


def test_every_malformed_line_is_reported_with_its_number() -> None:
    lines = [
        line(id="ok"),                                        # 1
        "{not json",                                          # 2
        "[1, 2]",                                             # 3
        line(tier="medium"),                                  # 4
        line(intent="poetry", scorer="numeric", expected="x"),  # 5: two problems
        line(scorer="multiple_choice", expected="E"),         # 6
        line(scorer="regex", pattern="(unclosed"),            # 7
        json.dumps({"tier": "simple", "intent": "math", "expected": "4"}),  # 8: no prompt
        line(promt="typo"),                                   # 9: unknown field
        line(id="ok"),                                        # 10: duplicate id
        line(scorer="exact_match", expected=""),              # 11
        line(prompt="p", messages=[{"role": "user", "content": "m"}]),  # 12
        line(max_output_tokens=0),                            # 13
    ]
    with pytest.raises(EvalSetError) as raised:
        parse_eval_lines(lines)
    errors = raised.value.errors
    numbers = sorted({int(error.split(":")[0].removeprefix("line ")) for error in errors})
    assert numbers == list(range(2, 14))
    text = "\n".join(errors)
    for expected in ("line 2: not valid JSON", "line 3: must be a JSON object", "line 4: tier:",
                     "line 5: intent:", "line 6: scorer multiple_choice needs expected: one letter of ABCD",
                     "line 7: pattern is not a valid regular expression", "line 8: give exactly one of prompt",
                     "line 9: promt: Extra inputs are not permitted", "line 10: id 'ok' repeats line 1",
                     "line 11: scorer exact_match needs expected", "line 12: give exactly one of prompt or messages",
                     "line 13: max_output_tokens:"):
        assert expected in text, expected
    assert sum(error.startswith("line 5:") for error in errors) == 1  # pydantic stops at the enum; one error


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(EvalSetError, match="no items"):
        load_eval_set(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="cannot read the file"):
        load_eval_set(tmp_path / "missing.jsonl")


def test_shipped_sample_parses_and_covers_every_tier() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "profiler" / "eval-sample.jsonl"
    items = load_eval_set(path)
    assert {item.tier for item in items} == set(ComplexityTier.known())
    assert {item.scorer for item in items} >= {Scorer.NUMERIC, Scorer.MULTIPLE_CHOICE, Scorer.EXACT_MATCH}
