"""The mesh's one vocabulary: the enums of the protos as Python string enums, and their proto conversions.

Each enum mirrors one proto enum; a member's value is the proto name without its prefix, lower-cased
(`QUANTIZATION_FP8` -> `Quantization.FP8 == "fp8"`), so the enums read and serialise as the strings that profiles,
settings, metrics labels and logs use. `UNSPECIFIED` is the proto's zero value, "not set": it is kept so that a value
from a newer peer can be read (`from_proto` maps unknown numbers to it), and `known()` lists the members without it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self, TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from pydantic import AfterValidator

from quantmesh.common.v1 import common_pb2
from quantmesh.router.v1 import batch_pb2, router_pb2

UNSPECIFIED = "unspecified"


class ProtoEnum(StrEnum):
    """Base of the vocabulary's enums: `known()` is every member but UNSPECIFIED, in proto order."""

    @classmethod
    def known(cls) -> tuple[Self, ...]:
        return tuple(member for member in cls if member.value != UNSPECIFIED)


_E = TypeVar("_E", bound=ProtoEnum)


class Quantization(ProtoEnum):
    """Quantization of a served model (`quantmesh.common.v1.Quantization`)."""

    UNSPECIFIED = UNSPECIFIED
    NONE = "none"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"
    GGUF = "gguf"
    W8A8 = "w8a8"
    W4A16 = "w4a16"


class ComplexityTier(ProtoEnum):
    """How hard the classifier judged a query (`quantmesh.common.v1.ComplexityTier`)."""

    UNSPECIFIED = UNSPECIFIED
    SIMPLE = "simple"
    COMPLEX = "complex"
    HARD = "hard"


class TaskIntent(ProtoEnum):
    """The kind of task a query asks for (`quantmesh.common.v1.TaskIntent`)."""

    UNSPECIFIED = UNSPECIFIED
    CLASSIFICATION = "classification"
    EXTRACTION = "extraction"
    QUESTION_ANSWERING = "question_answering"
    SUMMARIZATION = "summarization"
    CODE = "code"
    MATH = "math"
    REASONING = "reasoning"
    CREATIVE = "creative"
    CHAT = "chat"
    OTHER = "other"


class RoutingMode(ProtoEnum):
    """How the router chooses among feasible pairs (`quantmesh.common.v1.RoutingMode`): the cheapest (default), or
    a weighted utility that puts latency first (interactive) or cost first (batch)."""

    UNSPECIFIED = UNSPECIFIED
    INTERACTIVE = "interactive"
    BATCH = "batch"
    CHEAPEST = "cheapest"


class FinishReason(ProtoEnum):
    """Why a generation ended (`quantmesh.common.v1.FinishReason`)."""

    UNSPECIFIED = UNSPECIFIED
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


class ChatRole(ProtoEnum):
    """Author of a chat message (`quantmesh.common.v1.ChatRole`)."""

    UNSPECIFIED = UNSPECIFIED
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class RejectionReason(ProtoEnum):
    """The hard constraint a candidate pair failed (`quantmesh.router.v1.RejectionReason`)."""

    UNSPECIFIED = UNSPECIFIED
    LATENCY_BUDGET = "latency_budget"
    ACCURACY = "accuracy"
    CONTEXT_LENGTH = "context_length"
    UNHEALTHY = "unhealthy"
    CIRCUIT_OPEN = "circuit_open"
    QUANTIZATION_RULE = "quantization_rule"


class RouteOutcome(ProtoEnum):
    """Routed, fallback or rejected (`quantmesh.router.v1.RouteOutcome`)."""

    UNSPECIFIED = UNSPECIFIED
    ROUTED = "routed"
    FALLBACK = "fallback"
    REJECTED = "rejected"


class ProfileSource(ProtoEnum):
    """Where a router's profiles came from (`quantmesh.router.v1.ProfileSource`)."""

    UNSPECIFIED = UNSPECIFIED
    REDIS = "redis"
    STATIC_FILE = "static_file"


class BatchStatus(ProtoEnum):
    """Where a batch is (`quantmesh.router.v1.BatchStatus`)."""

    UNSPECIFIED = UNSPECIFIED
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


def _refuse_unspecified(value: ProtoEnum) -> ProtoEnum:
    if value.value == UNSPECIFIED:
        raise ValueError(f"must be one of {', '.join(member.value for member in type(value).known())}")
    return value


# Pydantic field types for settings, configs, profiles and eval files: a member other than UNSPECIFIED.
KnownQuantization = Annotated[Quantization, AfterValidator(_refuse_unspecified)]
KnownTier = Annotated[ComplexityTier, AfterValidator(_refuse_unspecified)]
KnownIntent = Annotated[TaskIntent, AfterValidator(_refuse_unspecified)]


_PROTO_ENUMS: dict[type[ProtoEnum], tuple[EnumTypeWrapper, str]] = {
    Quantization: (common_pb2.Quantization, "QUANTIZATION_"),
    ComplexityTier: (common_pb2.ComplexityTier, "COMPLEXITY_TIER_"),
    TaskIntent: (common_pb2.TaskIntent, "TASK_INTENT_"),
    RoutingMode: (common_pb2.RoutingMode, "ROUTING_MODE_"),
    FinishReason: (common_pb2.FinishReason, "FINISH_REASON_"),
    ChatRole: (common_pb2.ChatRole, "CHAT_ROLE_"),
    RejectionReason: (router_pb2.RejectionReason, "REJECTION_REASON_"),
    RouteOutcome: (router_pb2.RouteOutcome, "ROUTE_OUTCOME_"),
    ProfileSource: (router_pb2.ProfileSource, "PROFILE_SOURCE_"),
    BatchStatus: (batch_pb2.BatchStatus, "BATCH_STATUS_"),
}
_TO_PROTO: dict[ProtoEnum, int] = {
    member: int(wrapper.Value(prefix + member.name))
    for cls, (wrapper, prefix) in _PROTO_ENUMS.items()
    for member in cls
}
_FROM_PROTO: dict[type[ProtoEnum], dict[int, ProtoEnum]] = {
    cls: {_TO_PROTO[member]: member for member in cls} for cls in _PROTO_ENUMS
}


def to_proto(value: ProtoEnum) -> int:
    """The proto enum number of `value` (for example `Quantization.FP8` -> `common_pb2.QUANTIZATION_FP8`)."""
    return _TO_PROTO[value]


def from_proto(cls: type[_E], number: int) -> _E:
    """The member of `cls` for a proto enum number; UNSPECIFIED for 0 and for numbers this build does not know
    (proto3 enums are open: a newer peer may send a value added after this build)."""
    return _FROM_PROTO[cls].get(number, cls.UNSPECIFIED)  # type: ignore[return-value]


def is_known_proto(cls: type[ProtoEnum], number: int) -> bool:
    """Whether `number` is a value of `cls` other than UNSPECIFIED (for validating requests)."""
    member = _FROM_PROTO[cls].get(number)
    return member is not None and member.value != UNSPECIFIED
