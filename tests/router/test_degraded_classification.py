"""Unit tests of the rule-based classification used when the classifier is unreachable."""

from __future__ import annotations

import pytest

from core.vocabulary import ComplexityTier, TaskIntent
from services.router.degraded_classification import classify_degraded, numeric_token_share


@pytest.mark.parametrize(("text", "tier", "intent"), [
    ("Hello, how are you today?", ComplexityTier.SIMPLE, TaskIntent.CHAT),
    ("What is the capital of France?", ComplexityTier.SIMPLE, TaskIntent.QUESTION_ANSWERING),
    ("Prove that there are infinitely many primes.", ComplexityTier.HARD, TaskIntent.OTHER),
    ("Explain the difference between TCP and UDP.", ComplexityTier.COMPLEX, TaskIntent.OTHER),
    ("Fix this bug:\n```python\ndef f(x):\n    return x +\n```", ComplexityTier.COMPLEX, TaskIntent.CODE),
    ("Summarize: " + "the meeting was long. " * 150, ComplexityTier.HARD, TaskIntent.SUMMARIZATION),
    ("Calculate 1234 * 5678 + 91011 - 1213", ComplexityTier.COMPLEX, TaskIntent.MATH),
])
def test_rules(text: str, tier: ComplexityTier, intent: TaskIntent) -> None:
    result = classify_degraded(text)
    assert (result.tier, result.intent) == (tier, intent)


def test_numeric_share_and_token_estimate() -> None:
    assert numeric_token_share("") == 0.0
    assert numeric_token_share("add 2 and 3") == pytest.approx(2 / 4)
    result = classify_degraded("x" * 401)
    assert result.estimated_input_tokens == 101
