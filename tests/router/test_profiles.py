"""Unit tests of profile validation: each error names the offending field path."""

from __future__ import annotations

import json

import pydantic
import pytest

from core.profiles import ProfileValidationError, parse_profile_document
from core.vocabulary import Quantization
from tests.router.helpers import document_dict, pair_dict

A = pair_dict("model-a", "127.0.0.1:2001", quantization="awq")
B = pair_dict("model-b", "127.0.0.1:2002", quantization="fp8")


def errors_of(raw: object) -> list[str]:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    with pytest.raises(ProfileValidationError) as info:
        parse_profile_document(text)
    return info.value.errors


def test_a_valid_document_round_trips() -> None:
    doc = parse_profile_document(json.dumps(document_dict(A, B, version=3)))
    assert doc.version == 3
    assert [p.key for p in doc.pairs] == [("model-a", Quantization.AWQ), ("model-b", Quantization.FP8)]
    assert parse_profile_document(doc.to_json()) == doc


def test_documents_are_frozen() -> None:
    doc = parse_profile_document(json.dumps(document_dict(A)))
    with pytest.raises(pydantic.ValidationError):
        doc.pairs[0].ttft_p50_ms = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("change", "expected_path"), [
    ({"accuracy_by_tier": {"simple": 0.9, "complex": 0.8, "hard": 1.2}}, "pairs.1.accuracy_by_tier.hard"),
    ({"accuracy_by_intent": {"math": -0.1}}, "pairs.1.accuracy_by_intent.math"),
    ({"accuracy_by_intent": {"astrology": 0.5}}, "pairs.1.accuracy_by_intent.astrology.[key]"),
    ({"quantization": "int3"}, "pairs.1.quantization"),
    ({"max_model_len": 0}, "pairs.1.max_model_len"),
    ({"tokenization_ratio": 0}, "pairs.1.tokenization_ratio"),
    ({"endpoint": "no-port"}, "pairs.1.endpoint"),
    ({"ttft_p50_ms": -1}, "pairs.1.ttft_p50_ms"),
    ({"surprise": 1}, "pairs.1.surprise"),
])
def test_field_errors_name_the_field_path(change: dict, expected_path: str) -> None:
    errors = errors_of(document_dict(A, {**B, **change}))
    assert any(error.startswith(expected_path + ":") for error in errors), errors


def test_missing_field_is_named() -> None:
    broken = {key: value for key, value in B.items() if key != "itl_p50_ms"}
    assert errors_of(document_dict(A, broken)) == ["pairs.1.itl_p50_ms: Field required"]


def test_cost_must_follow_from_price_and_throughput() -> None:
    errors = errors_of(document_dict(A, {**B, "cost_per_1m_tokens_usd": 0.01}))
    assert len(errors) == 1 and errors[0].startswith("pairs.1: cost_per_1m_tokens_usd (0.01) does not follow")


def test_ttft_p99_below_p50_is_rejected() -> None:
    errors = errors_of(document_dict({**A, "ttft_p50_ms": 50.0, "ttft_p99_ms": 10.0}))
    assert errors[0].startswith("pairs.0: ttft_p99_ms (10.0) is below ttft_p50_ms (50.0)")


def test_duplicate_pairs_and_endpoints_are_rejected() -> None:
    dup_pair = errors_of(document_dict(A, {**A, "endpoint": "127.0.0.1:2003"}))
    assert dup_pair == ["document: pairs.1: duplicate pair model-a/awq (also pairs.0)"]
    dup_endpoint = errors_of(document_dict(A, {**B, "endpoint": A["endpoint"]}))
    assert dup_endpoint[0].startswith("document: pairs.1.endpoint: 127.0.0.1:2001 is already pairs.0's")


def test_document_level_errors() -> None:
    assert errors_of("{not json")[0].startswith("document: not valid JSON")
    assert errors_of("[]") == ["document: must be a JSON object"]
    assert errors_of(document_dict()) == ["pairs: List should have at least 1 item after validation, not 0"]
    assert errors_of({**document_dict(A), "schema_version": 2})[0].startswith("schema_version:")
    assert errors_of({**document_dict(A), "version": -1})[0].startswith("version:")


def test_the_shipped_static_profile_file_is_valid() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "profiles" / "local.json"
    document = parse_profile_document(path.read_text())
    assert {pair.model_id for pair in document.pairs} == {"tiny-llama-s", "tiny-llama-m"}
