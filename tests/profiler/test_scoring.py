"""Scoring per task type: right answers, wrong answers and malformed outputs."""

from __future__ import annotations

import pytest

from tools.profiler.eval_set import EvalItem
from tools.profiler.scoring import extract_choice, extract_number, normalize_answer, score


def item(**fields) -> EvalItem:
    return EvalItem.model_validate({"id": "x", "prompt": "q", "tier": "simple", "intent": "other", **fields})


class TestExactMatch:
    @pytest.mark.parametrize("output", ["Paris", " paris.", "The Paris!", "  PARIS \n"])
    def test_normalised_outputs_match(self, output: str) -> None:
        assert score(item(expected="Paris"), output).correct

    def test_any_accepted_answer_matches(self) -> None:
        verdict = score(item(expected=["transfer", "bank transfer"]), "Bank transfer")
        assert verdict.correct and verdict.extracted == "bank transfer"

    @pytest.mark.parametrize("output", ["Paris is the capital", "Lyon", "Pari s"])
    def test_wrong_answers(self, output: str) -> None:
        verdict = score(item(expected="Paris"), output)
        assert not verdict.correct and verdict.extracted == normalize_answer(output) and verdict.reason

    @pytest.mark.parametrize("output", ["", "   ", "...", "the"])
    def test_empty_outputs_are_malformed(self, output: str) -> None:
        verdict = score(item(expected="Paris"), output)
        assert not verdict.correct and verdict.extracted is None and verdict.reason == "empty output"


class TestMultipleChoice:
    @pytest.mark.parametrize("output, letter", [
        ("B", "B"), (" (B) Kidney", "B"), ("B. Kidney", "B"), ("B) Kidney", "B"), ("C\n", "C"),
        ("Let me think. The answer is (B).", "B"), ("Answer: D", "D"), ("answer is c", None),
        ("The answer is A, no wait, the answer is C", "C"),
    ])
    def test_extraction(self, output: str, letter: str | None) -> None:
        assert extract_choice(output, ("A", "B", "C", "D")) == letter

    def test_right_letter(self) -> None:
        assert score(item(scorer="multiple_choice", expected="b"), "The answer is B").correct

    def test_wrong_letter(self) -> None:
        verdict = score(item(scorer="multiple_choice", expected="B"), "A. Bladder")
        assert not verdict.correct and verdict.extracted == "A" and "expected B" in verdict.reason

    @pytest.mark.parametrize("output", ["", "I am not sure", "the answer is a bit long", "Bladder", "E"])
    def test_malformed_outputs_have_no_letter(self, output: str) -> None:
        verdict = score(item(scorer="multiple_choice", expected="A"), output)
        assert not verdict.correct and verdict.extracted is None and verdict.reason == "no choice letter found"

    def test_letters_beyond_num_choices_are_not_choices(self) -> None:
        assert not score(item(scorer="multiple_choice", expected="A", num_choices=4), "E").correct
        assert score(item(scorer="multiple_choice", expected="E", num_choices=5), "E").correct


class TestNumeric:
    @pytest.mark.parametrize("output, value", [
        ("She makes 9 * $2 = $18.\n#### 18", 18.0), ("#### 1,234", 1234.0), ("The answer is 3.5 bolts", 3.5),
        ("2 + 1 = 3 apples", 3.0), ("so -4 degrees", -4.0), ("$18.00.", 18.0), ("nothing here", None),
        ("#### 7 then later 9", 7.0),
    ])
    def test_extraction(self, output: str, value: float | None) -> None:
        assert extract_number(output) == value

    def test_within_tolerance(self) -> None:
        assert score(item(scorer="numeric", expected=18, tolerance=0.01), "#### 18.005").correct
        assert score(item(scorer="numeric", expected="1,000", relative_tolerance=0.01), "about 1005").correct

    def test_outside_tolerance_is_wrong(self) -> None:
        verdict = score(item(scorer="numeric", expected=18, tolerance=0.01), "#### 18.5")
        assert not verdict.correct and verdict.extracted == "18.5" and "!= 18" in verdict.reason

    @pytest.mark.parametrize("output", ["", "eighteen", "#### ?"])
    def test_malformed_outputs_have_no_number(self, output: str) -> None:
        verdict = score(item(scorer="numeric", expected=18), output)
        assert not verdict.correct and verdict.extracted is None and verdict.reason == "no number found"


class TestRegexChecker:
    def test_pattern_found(self) -> None:
        verdict = score(item(scorer="regex", pattern=r"def \w+\("), "here:\ndef add(a, b):\n    return a + b")
        assert verdict.correct and verdict.extracted == "def add("

    def test_pattern_missing(self) -> None:
        verdict = score(item(scorer="regex", pattern=r"def \w+\("), "lambda a, b: a + b")
        assert not verdict.correct and verdict.extracted is None
