"""What the classifier says of one query: the one result type of the model, the router and the SDK.

The classifier model produces it (`core.classifier_model.model`), the ClassifierService sends it as
`quantmesh.classifier.v1.Classification`, the router routes on it (and makes one from its degraded rules when the
classifier cannot answer), and the SDK returns it inside a route decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core import vocabulary
from core.vocabulary import ComplexityTier, TaskIntent
from quantmesh.classifier.v1 import classifier_pb2


@dataclass(frozen=True)
class Classification:
    """The classification of one query.

    Attributes:
        tier: Complexity tier; UNSPECIFIED only when read from a peer that did not set it.
        intent: Task intent; UNSPECIFIED when not known.
        numeric_token_share: Share of reference-tokenizer tokens that are numeric, in [0, 1].
        estimated_input_tokens: Tokens of the query under the reference tokenizer.
        needs_strong_model_probability: Calibrated P(weak model wrong and strong model right), in [0, 1]; 0 for a
            rule-based answer.
        tier_probabilities: Probability of each tier, summing to 1 (one-hot for a rule-based answer).
        intent_confidence: Probability of `intent`, in [0, 1].
        model_version: The classifier artifact's version, or the degraded rules' name.
        question_focused: True when the heads scored the question without its wrapping
            (`core.classifier_model.focus`); the token estimate and numeric share still cover the whole text.
        encoder_truncated: True when the text encoder read only the first part of the question
            (`core.classifier_model.encoder`).
    """

    tier: ComplexityTier
    intent: TaskIntent
    numeric_token_share: float
    estimated_input_tokens: int
    needs_strong_model_probability: float = 0.0
    tier_probabilities: Mapping[ComplexityTier, float] = field(default_factory=dict)
    intent_confidence: float = 0.0
    model_version: str = ""
    question_focused: bool = False
    encoder_truncated: bool = False

    def to_proto(self) -> classifier_pb2.Classification:
        """The proto message; a rule-based answer without tier probabilities gets a one-hot distribution."""
        probabilities = self.tier_probabilities or {
            tier: float(tier is self.tier) for tier in ComplexityTier.known()
        }
        return classifier_pb2.Classification(
            tier=vocabulary.to_proto(self.tier),
            needs_strong_model_probability=self.needs_strong_model_probability,
            tier_probabilities=[
                classifier_pb2.TierProbability(tier=vocabulary.to_proto(tier), probability=probability)
                for tier, probability in probabilities.items()
            ],
            intent=vocabulary.to_proto(self.intent),
            intent_confidence=self.intent_confidence,
            numeric_token_share=self.numeric_token_share,
            estimated_input_tokens=self.estimated_input_tokens,
            model_version=self.model_version,
            question_focused=self.question_focused,
            encoder_truncated=self.encoder_truncated,
        )

    @classmethod
    def from_proto(cls, message: classifier_pb2.Classification) -> Classification:
        """The classification a peer sent; unknown enum values read as UNSPECIFIED, the share is clamped to [0, 1]."""
        return cls(
            tier=vocabulary.from_proto(ComplexityTier, message.tier),
            intent=vocabulary.from_proto(TaskIntent, message.intent),
            numeric_token_share=min(1.0, max(0.0, message.numeric_token_share)),
            estimated_input_tokens=message.estimated_input_tokens,
            needs_strong_model_probability=message.needs_strong_model_probability,
            tier_probabilities={
                vocabulary.from_proto(ComplexityTier, item.tier): item.probability
                for item in message.tier_probabilities
            },
            intent_confidence=message.intent_confidence,
            model_version=message.model_version,
            question_focused=message.question_focused,
            encoder_truncated=message.encoder_truncated,
        )


def chat_text(turns: Iterable[tuple[str, str]]) -> str:
    """The text the router classifies for a chat: one "role: content" line per (role, content), oldest first.

    The eval-set builder and the benchmarks classify chats through this too, so that an item's tier is the one the
    router computes for it.
    """
    return "\n".join(f"{role}: {content}" for role, content in turns)
