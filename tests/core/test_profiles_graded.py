"""Graded accuracy in the profile: Wilson intervals, counts that must match the accuracies, derived input prices."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.profiles import GradedSlice, PairProfile, wilson_interval
from core.vocabulary import TaskIntent
from tests.router.helpers import pair_dict


@pytest.mark.parametrize(("correct", "total", "low", "high"), [
    # Reference values: the Wilson score interval at z = 1.96 (Newcombe 1998, table I: 81/263 -> 0.2553-0.3662).
    (81, 263, 0.2553, 0.3662),
    (50, 100, 0.4038, 0.5962),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_interval_matches_reference_values(correct: int, total: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(correct, total)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("correct", "total"), [(3, 0), (-1, 5), (6, 5)])
def test_wilson_interval_refuses_impossible_counts(correct: int, total: int) -> None:
    with pytest.raises(ValueError, match="correct"):
        wilson_interval(correct, total)


def test_a_graded_slice_with_an_interval_that_is_not_wilson_is_refused() -> None:
    with pytest.raises(ValidationError, match="not the Wilson interval"):
        GradedSlice(correct=5, total=10, ci95_low=0.4, ci95_high=0.6)


def _graded(simple: tuple[int, int], complex_: tuple[int, int], hard: tuple[int, int]) -> dict:
    return {tier: GradedSlice.of(*counts).model_dump()
            for tier, counts in (("simple", simple), ("complex", complex_), ("hard", hard))}


def test_accuracy_must_be_the_graded_counts() -> None:
    graded = _graded((9, 10), (4, 5), (1, 4))
    profile = PairProfile.model_validate(pair_dict("m", "h:1", accuracy=(0.9, 0.8, 0.25), graded_by_tier=graded))
    assert profile.graded_by_tier[next(iter(profile.graded_by_tier))].total == 10
    with pytest.raises(ValidationError, match="accuracy_by_tier.hard"):
        PairProfile.model_validate(pair_dict("m", "h:1", accuracy=(0.9, 0.8, 0.5), graded_by_tier=graded))


def test_graded_counts_cover_every_tier_or_none() -> None:
    partial = {"simple": GradedSlice.of(9, 10).model_dump()}
    with pytest.raises(ValidationError, match="every tier"):
        PairProfile.model_validate(pair_dict("m", "h:1", graded_by_tier=partial))


def test_graded_intent_needs_its_accuracy() -> None:
    with pytest.raises(ValidationError, match="graded_by_intent.math"):
        PairProfile.model_validate(pair_dict("m", "h:1", graded_by_intent={"math": GradedSlice.of(1, 2).model_dump()}))
    with pytest.raises(ValidationError, match="accuracy_by_intent.math"):
        PairProfile.model_validate(pair_dict("m", "h:1", accuracy_by_intent={"math": 0.9},
                                             graded_by_intent={"math": GradedSlice.of(1, 2).model_dump()}))


def test_input_price_must_follow_from_the_prefill_rate() -> None:
    ok = pair_dict("m", "h:1", price_per_hour_usd=0.5, prefill_tokens_per_s=2000.0,
                   cost_per_1m_input_tokens_usd=0.5 / (2000.0 * 3600) * 1e6)
    assert PairProfile.model_validate(ok).input_cost_per_1m_tokens_usd() == pytest.approx(0.0694, abs=1e-4)
    with pytest.raises(ValidationError, match="cost_per_1m_input_tokens_usd"):
        PairProfile.model_validate(ok | {"cost_per_1m_input_tokens_usd": 1.0})
    with pytest.raises(ValidationError, match="both"):
        PairProfile.model_validate(pair_dict("m", "h:1", prefill_tokens_per_s=2000.0))


def test_a_profile_without_an_input_price_prices_input_like_output() -> None:
    profile = PairProfile.model_validate(pair_dict("m", "h:1"))
    assert profile.input_cost_per_1m_tokens_usd() == profile.cost_per_1m_tokens_usd


def test_expected_output_tokens_rounds_up_the_mean_and_respects_the_bound() -> None:
    profile = PairProfile.model_validate(pair_dict("m", "h:1", mean_output_tokens_by_intent={"math": 150.2}))
    assert profile.expected_output_tokens(TaskIntent.MATH, 512) == 151
    assert profile.expected_output_tokens(TaskIntent.MATH, 64) == 64
    assert profile.expected_output_tokens(TaskIntent.CHAT, 64) == 64
    assert profile.expected_output_tokens(None, 64) == 64
