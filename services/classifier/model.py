"""The classifier at serving time: one text in, one `Classification` out, in pure numpy (no sklearn per call).

Complexity has two logistic-regression heads, picked by the prompt's format: `multiple_choice` (two or more
answer-choice lines such as "A. ..."; trained on MMLU) and `open_ended` (everything else; trained on GSM8K). Each
head's logit is calibrated by Platt scaling fitted on the validation split. Intent is one multinomial logistic
regression over the same features. See README.md for the data and the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.classifier.artifact import Artifact, ArtifactError, load_artifact
from services.classifier.features import DENSE_FEATURES, Featurizer, dense_raw
from services.classifier.reference_tokenizer import ReferenceTokenizer
from services.classifier.tiers import TierThresholds, tier_probabilities

COMPLEXITY_HEADS = ("open_ended", "multiple_choice")
_ANSWER_CHOICES = DENSE_FEATURES.index("answer_choices")


def complexity_head(raw_dense: list[float]) -> int:
    """Index in `COMPLEXITY_HEADS` of the head for a text with these raw dense features."""
    return 1 if raw_dense[_ANSWER_CHOICES] >= 2 else 0


@dataclass(frozen=True)
class Classification:
    """What the classifier says of one text.

    Attributes:
        tier: "simple", "complex" or "hard" (`services.classifier.tiers`).
        needs_strong_model_probability: Calibrated P(weak model wrong and strong model right), in [0, 1].
        tier_probabilities: Probability of each tier, summing to 1.
        intent: One of the manifest's intents (for example "math").
        intent_confidence: Probability of that intent, in [0, 1].
        numeric_token_share: Share of reference-tokenizer tokens that are numeric, in [0, 1].
        estimated_input_tokens: Tokens under the reference tokenizer.
        model_version: The artifact's version.
    """

    tier: str
    needs_strong_model_probability: float
    tier_probabilities: dict[str, float]
    intent: str
    intent_confidence: float
    numeric_token_share: float
    estimated_input_tokens: int
    model_version: str


class ClassifierModel:
    """A loaded artifact, ready to classify.

    Args:
        artifact: A verified artifact (`load_artifact`).

    Raises:
        ArtifactError: the tokenizer in the artifact cannot be loaded or does not match the weights.
    """

    def __init__(self, artifact: Artifact) -> None:
        manifest, arrays = artifact.manifest, artifact.arrays
        try:
            self.tokenizer = ReferenceTokenizer(artifact.tokenizer_path)
        except Exception as exc:
            raise ArtifactError(f"{artifact.tokenizer_path} is not a valid tokenizer: {exc}") from exc
        self.featurizer = Featurizer(
            vocab_size=int(manifest["vocab_size"]),
            bigram_buckets=int(manifest["bigram_buckets"]),
            dense_mean=arrays["dense_mean"].astype(np.float64),
            dense_scale=arrays["dense_scale"].astype(np.float64),
        )
        if self.tokenizer.vocab_size != self.featurizer.vocab_size:
            raise ArtifactError(
                f"tokenizer has {self.tokenizer.vocab_size} tokens but the weights expect {self.featurizer.vocab_size}"
            )
        offset = self.featurizer.dense_offset
        self.model_version = artifact.model_version
        self.intents: tuple[str, ...] = tuple(manifest["intents"])
        self.thresholds = TierThresholds(**manifest["tier_thresholds"])
        weights = arrays["complexity_weights"].astype(np.float64)
        self._complexity_tokens = weights[:, :offset]
        self._complexity_dense = weights[:, offset:]
        self._complexity_bias = arrays["complexity_bias"].astype(np.float64)
        self._calibration = arrays["complexity_calibration"].astype(np.float64)
        intent_weights = arrays["intent_weights"].astype(np.float64)
        self._intent_tokens = intent_weights[:offset]
        self._intent_dense = intent_weights[offset:]
        self._intent_bias = arrays["intent_bias"].astype(np.float64)

    @classmethod
    def load(cls, directory: Path) -> ClassifierModel:
        """Loads and verifies the artifact in `directory`. Raises `ArtifactError` (see `load_artifact`)."""
        return cls(load_artifact(directory))

    def classify(self, text: str) -> Classification:
        """Classifies one text (any length; the service enforces its size limit before calling this)."""
        ids = self.tokenizer.encode(text)
        numeric_share = self.tokenizer.numeric_token_share(ids)
        raw = dense_raw(text, len(ids), numeric_share)
        dense = (np.asarray(raw) - self.featurizer.dense_mean) / self.featurizer.dense_scale
        columns, values = self.featurizer.token_features(ids)

        head = complexity_head(raw)
        logit = (
            self._complexity_tokens[head, columns] @ values
            + self._complexity_dense[head] @ dense
            + self._complexity_bias[head]
        )
        slope, intercept = self._calibration[head]
        probability = 1 / (1 + math.exp(-(slope * logit + intercept)))

        intent_logits = values @ self._intent_tokens[columns] + dense @ self._intent_dense + self._intent_bias
        intent_logits -= intent_logits.max()
        intent_probabilities = np.exp(intent_logits)
        intent_probabilities /= intent_probabilities.sum()
        best = int(np.argmax(intent_probabilities))

        return Classification(
            tier=self.thresholds.tier(probability),
            needs_strong_model_probability=probability,
            tier_probabilities=tier_probabilities(probability, self.thresholds),
            intent=self.intents[best],
            intent_confidence=float(intent_probabilities[best]),
            numeric_token_share=numeric_share,
            estimated_input_tokens=len(ids),
            model_version=self.model_version,
        )
