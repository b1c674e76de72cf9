"""Domain <-> proto conversions of the classifier (pure)."""

from __future__ import annotations

from core.classifier_model.model import Classification
from core.classifier_model.tiers import TIERS
from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.common.v1 import common_pb2

_TIER_TO_PROTO = {name: common_pb2.ComplexityTier.Value(f"COMPLEXITY_TIER_{name.upper()}") for name in TIERS}


def intent_to_proto(intent: str) -> int:
    """`TaskIntent` value of an intent name, for example "question_answering" -> TASK_INTENT_QUESTION_ANSWERING."""
    return common_pb2.TaskIntent.Value(f"TASK_INTENT_{intent.upper()}")


def tier_to_proto(tier: str) -> int:
    """`ComplexityTier` value of a tier name ("simple", "complex", "hard")."""
    return _TIER_TO_PROTO[tier]


def classification_to_proto(classification: Classification) -> classifier_pb2.Classification:
    """The proto `Classification` of a domain one."""
    return classifier_pb2.Classification(
        tier=tier_to_proto(classification.tier),
        needs_strong_model_probability=classification.needs_strong_model_probability,
        tier_probabilities=[
            classifier_pb2.TierProbability(tier=tier_to_proto(tier), probability=probability)
            for tier, probability in classification.tier_probabilities.items()
        ],
        intent=intent_to_proto(classification.intent),
        intent_confidence=classification.intent_confidence,
        numeric_token_share=classification.numeric_token_share,
        estimated_input_tokens=classification.estimated_input_tokens,
        model_version=classification.model_version,
    )
