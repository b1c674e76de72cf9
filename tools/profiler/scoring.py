"""Scores a model's output against an eval item: exact match, multiple-choice letter, numeric answer, regex checker.

Each scorer returns a `Score` saying whether the answer is right, what was extracted from the output, and why it is
wrong (a wrong answer, or a malformed output with nothing to extract). Normalisation and extraction follow the common
practice of the benchmarks the items come from:
- exact match: SQuAD's answer normalisation (lower case, punctuation and the articles a/an/the removed, whitespace
  collapsed; Rajpurkar et al. 2016, the official evaluate script), applied to the output and to each accepted answer;
- multiple choice: an explicit "answer is X" / "Answer: X" wins (the last one), else a letter opening the output
  ("B", "(B)", "B. text", "B) text"); nothing else is guessed, as in OpenAI simple-evals' MMLU answer pattern;
- numeric: GSM8K's "#### N" final-answer marker, else "answer is N", else the last number in the output
  (the lm-evaluation-harness GSM8K "flexible extract"); compared with `math.isclose(abs_tol, rel_tol)`.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass

from tools.profiler.eval_set import EvalItem, Scorer, choice_letters, parse_number


@dataclass(frozen=True)
class Score:
    """The verdict on one output.

    Attributes:
        correct: The output answers the item correctly.
        extracted: What was read from the output (the normalised text, the letter, the number), or None when
            nothing could be extracted (a malformed output).
        reason: Why it is wrong ("" when correct), for the report.
    """

    correct: bool
    extracted: str | None
    reason: str = ""


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def score_exact_match(output: str, accepted: list[str]) -> Score:
    normalized = normalize_answer(output)
    if not normalized:
        return Score(False, None, "empty output")
    if normalized in {normalize_answer(answer) for answer in accepted}:
        return Score(True, normalized)
    return Score(False, normalized, f"{normalized!r} is not one of {accepted!r}")


def extract_choice(output: str, letters: tuple[str, ...]) -> str | None:
    """The chosen letter among `letters`, or None (see the module docstring for the patterns)."""
    options = "".join(letters)
    # Only the keyword ignores case: "the answer is a bit long" must not read as choice A.
    explicit = re.findall(rf"(?i:answer)(?:\s+(?i:is))?\s*[:\-]?\s*\(?([{options}])\)?(?![A-Za-z])", output)
    if explicit:
        return explicit[-1].upper()
    opening = re.match(rf"\s*\(?([{options}])(?:[\).:]|\s|$)", output)
    return opening.group(1) if opening else None


def score_multiple_choice(output: str, expected: str, num_choices: int) -> Score:
    choice = extract_choice(output, choice_letters(num_choices))
    if choice is None:
        return Score(False, None, "no choice letter found")
    if choice == expected.strip().upper():
        return Score(True, choice)
    return Score(False, choice, f"chose {choice}, expected {expected.strip().upper()}")


_NUMBER = r"[-+]?\$?\d[\d,]*(?:\.\d+)?"


def extract_number(output: str) -> float | None:
    """The final numeric answer of `output`, or None (see the module docstring for the order of patterns)."""
    for pattern in (rf"####\s*({_NUMBER})", rf"answer is\s*:?\s*({_NUMBER})"):
        found = re.findall(pattern, output, re.IGNORECASE)
        if found:
            return parse_number(found[-1])
    numbers = re.findall(_NUMBER, output)
    return parse_number(numbers[-1]) if numbers else None


def score_numeric(output: str, expected: float, tolerance: float, relative_tolerance: float) -> Score:
    value = extract_number(output)
    if value is None:
        return Score(False, None, "no number found")
    shown = f"{value:g}"
    if math.isclose(value, expected, abs_tol=tolerance, rel_tol=relative_tolerance):
        return Score(True, shown)
    return Score(False, shown, f"{shown} != {expected:g} (tolerance {tolerance:g}, relative {relative_tolerance:g})")


def score_regex(output: str, pattern: str) -> Score:
    match = re.search(pattern, output)
    if match is None:
        return Score(False, None, f"pattern {pattern!r} not found")
    return Score(True, match.group(0))


def score(item: EvalItem, output: str) -> Score:
    """Scores `output` (the generated text) against `item` with the item's scorer."""
    if item.scorer is Scorer.EXACT_MATCH:
        accepted = item.expected if isinstance(item.expected, list) else [str(item.expected)]
        return score_exact_match(output, accepted)
    if item.scorer is Scorer.MULTIPLE_CHOICE:
        return score_multiple_choice(output, str(item.expected), item.num_choices)
    if item.scorer is Scorer.NUMERIC:
        return score_numeric(output, item.expected_number, item.tolerance, item.relative_tolerance)
    return score_regex(output, item.pattern or "")
