"""The one vocabulary: every enum member maps to its proto value and back, and unknown numbers read as UNSPECIFIED."""

from __future__ import annotations

import pytest

from core import vocabulary
from core.vocabulary import ComplexityTier, ProtoEnum, Quantization, RoutingMode, TaskIntent
from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import router_pb2

ENUMS: list[tuple[type[ProtoEnum], object, str]] = [
    (Quantization, common_pb2.Quantization, "QUANTIZATION_"),
    (ComplexityTier, common_pb2.ComplexityTier, "COMPLEXITY_TIER_"),
    (TaskIntent, common_pb2.TaskIntent, "TASK_INTENT_"),
    (RoutingMode, common_pb2.RoutingMode, "ROUTING_MODE_"),
    (vocabulary.FinishReason, common_pb2.FinishReason, "FINISH_REASON_"),
    (vocabulary.ChatRole, common_pb2.ChatRole, "CHAT_ROLE_"),
    (vocabulary.RejectionReason, router_pb2.RejectionReason, "REJECTION_REASON_"),
    (vocabulary.RouteOutcome, router_pb2.RouteOutcome, "ROUTE_OUTCOME_"),
    (vocabulary.ProfileSource, router_pb2.ProfileSource, "PROFILE_SOURCE_"),
]


@pytest.mark.parametrize(("cls", "wrapper", "prefix"), ENUMS, ids=[cls.__name__ for cls, _, _ in ENUMS])
def test_members_mirror_the_proto_enum(cls: type[ProtoEnum], wrapper, prefix: str) -> None:
    assert [prefix + member.name for member in cls] == list(wrapper.keys())
    for member in cls:
        assert member.value == member.name.lower()
        assert vocabulary.from_proto(cls, vocabulary.to_proto(member)) is member
    assert vocabulary.from_proto(cls, 999) is cls.UNSPECIFIED
    assert cls.UNSPECIFIED not in cls.known() and len(cls.known()) == len(cls) - 1


def test_is_known_proto_refuses_unspecified_and_unknown_numbers() -> None:
    assert vocabulary.is_known_proto(Quantization, common_pb2.QUANTIZATION_AWQ)
    assert not vocabulary.is_known_proto(Quantization, common_pb2.QUANTIZATION_UNSPECIFIED)
    assert not vocabulary.is_known_proto(Quantization, 42)


def test_known_field_types_refuse_unspecified() -> None:
    from pydantic import TypeAdapter, ValidationError

    for field_type, member in ((vocabulary.KnownQuantization, "awq"), (vocabulary.KnownTier, "hard"),
                               (vocabulary.KnownIntent, "math")):
        assert TypeAdapter(field_type).validate_python(member).value == member
        with pytest.raises(ValidationError, match="must be one of"):
            TypeAdapter(field_type).validate_python("unspecified")
