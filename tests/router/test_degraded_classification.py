"""Unit tests of the rule-based classification used when the classifier is unreachable."""

from __future__ import annotations

import pytest

from services.router.degraded_classification import classify_degraded, numeric_token_share
from services.router.profiles import Intent, Tier


@pytest.mark.parametrize(("text", "tier", "intent"), [
    ("Hello, how are you today?", Tier.SIMPLE, Intent.CHAT),
    ("What is the capital of France?", Tier.SIMPLE, Intent.QUESTION_ANSWERING),
    ("Prove that there are infinitely many primes.", Tier.HARD, Intent.OTHER),
    ("Explain the difference between TCP and UDP.", Tier.COMPLEX, Intent.OTHER),
    ("Fix this bug:\n```python\ndef f(x):\n    return x +\n```", Tier.COMPLEX, Intent.CODE),
    ("Summarize: " + "the meeting was long. " * 150, Tier.HARD, Intent.SUMMARIZATION),
    ("Calculate 1234 * 5678 + 91011 - 1213", Tier.COMPLEX, Intent.MATH),
])
def test_rules(text: str, tier: Tier, intent: Intent) -> None:
    result = classify_degraded(text)
    assert (result.tier, result.intent) == (tier, intent)


def test_numeric_share_and_token_estimate() -> None:
    assert numeric_token_share("") == 0.0
    assert numeric_token_share("add 2 and 3") == pytest.approx(2 / 4)
    result = classify_degraded("x" * 401)
    assert result.reference_input_tokens == 101
