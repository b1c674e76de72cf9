"""The classifier at serving time: texts in, one `Classification` each out, in pure numpy (no sklearn per call).

Complexity has two logistic-regression heads, picked by the prompt's format: `multiple_choice` (two or more
answer-choice lines such as "A. ..."; trained on MMLU) and `open_ended` (everything else; trained on GSM8K). Each
head's logit is calibrated by Platt scaling fitted on the validation split. Intent is one multinomial logistic
regression over the same features. See README.md for the data and the evaluation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.classification import Classification
from core.classifier_model.artifact import Artifact, ArtifactError, load_artifact
from core.classifier_model.features import DENSE_FEATURES, Featurizer, dense_raw
from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from core.classifier_model.tiers import TierThresholds, tier_probabilities
from core.vocabulary import TaskIntent

COMPLEXITY_HEADS = ("open_ended", "multiple_choice")
_ANSWER_CHOICES = DENSE_FEATURES.index("answer_choices")


def complexity_heads(raw_dense: np.ndarray) -> np.ndarray:
    """Index in `COMPLEXITY_HEADS` of the head of each text, from its raw dense features: shape
    (texts, len(DENSE_FEATURES)) -> (texts,) int64 (1, `multiple_choice`, from two answer-choice lines)."""
    return (raw_dense[:, _ANSWER_CHOICES] >= 2).astype(np.int64)


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
        try:
            self.intents: tuple[TaskIntent, ...] = tuple(TaskIntent(name) for name in manifest["intents"])
        except ValueError as exc:
            raise ArtifactError(f"manifest intents: {exc}") from exc
        self.thresholds = TierThresholds(**manifest["tier_thresholds"])
        # One output column per complexity head, then one per intent: a text's token logits are one gather and dot.
        complexity, intent = arrays["complexity_weights"], arrays["intent_weights"]
        self._token_weights = np.ascontiguousarray(np.hstack((complexity[:, :offset].T, intent[:offset])), np.float64)
        self._dense_weights = np.hstack((complexity[:, offset:].T, intent[offset:])).astype(np.float64)
        self._bias = np.concatenate((arrays["complexity_bias"], arrays["intent_bias"])).astype(np.float64)
        self._calibration = arrays["complexity_calibration"].astype(np.float64).tolist()  # per head: [slope, intercept]

    @classmethod
    def load(cls, directory: Path) -> ClassifierModel:
        """Loads and verifies the artifact in `directory`. Raises `ArtifactError` (see `load_artifact`)."""
        return cls(load_artifact(directory))

    def classify(self, text: str) -> Classification:
        """Classifies one text (any length; the service enforces its size limit before calling this): the answer
        `classify_batch` gives for it, bit for bit, with the token block built for one text (`Featurizer.token_row`)."""
        ids = self.tokenizer.encode(text)
        share = self.tokenizer.numeric_token_share(ids)
        raw = np.array([dense_raw(text, len(ids), share)], dtype=np.float64)
        columns, values = self.featurizer.token_row(ids)
        logits = (values @ self._token_weights[columns]).reshape(1, self._bias.size)
        return self._classifications(raw, logits, [share], [ids])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Classification]:
        """Classifies several texts at once: the same answers as `classify` one by one, bit for bit (every
        reduction runs within one text's row), for less time per text than one call each."""
        ids = self.tokenizer.encode_batch(texts)
        numeric_shares = [self.tokenizer.numeric_token_share(row) for row in ids]
        raw = np.array(
            [dense_raw(text, len(row), share) for text, row, share in zip(texts, ids, numeric_shares, strict=True)],
            dtype=np.float64,
        ).reshape(len(texts), len(DENSE_FEATURES))
        tokens = self.featurizer.token_rows(ids)
        columns, values, bounds = tokens.columns, tokens.values, tokens.indptr.tolist()
        # One dot product per row, on that row's entries only: a text's logits do not depend on the rest of the batch
        # (numpy's segmented sums and BLAS matrix products change their summation order with the batch's shape).
        logits = np.array(
            [values[start:end] @ self._token_weights[columns[start:end]] for start, end in itertools.pairwise(bounds)]
        ).reshape(len(texts), self._bias.size)
        return self._classifications(raw, logits, numeric_shares, ids)

    def _classifications(
        self, raw: np.ndarray, logits: np.ndarray, numeric_shares: list[float], ids: list[list[int]]
    ) -> list[Classification]:
        """The classifications of texts from their raw dense features, shape (texts, len(DENSE_FEATURES)), and token
        logits, shape (texts, heads + intents) (updated in place)."""
        dense = (raw - self.featurizer.dense_mean) / self.featurizer.dense_scale
        # Not `@`: a BLAS product's summation order depends on the batch's shape; this sum runs within each row.
        logits += (dense[:, :, None] * self._dense_weights).sum(axis=1) + self._bias
        return [
            self._classification(row_logits, head, share, len(row))
            for row_logits, head, share, row in zip(
                logits.tolist(), complexity_heads(raw).tolist(), numeric_shares, ids, strict=True
            )
        ]

    def _classification(self, logits: list[float], head: int, numeric_share: float, n_tokens: int) -> Classification:
        """One text's classification from its logits (heads, then intents) and its complexity head's index, in plain
        floats: a dozen numbers, for which numpy's per-call cost would exceed the arithmetic."""
        slope, intercept = self._calibration[head]
        probability = 1 / (1 + math.exp(-(slope * logits[head] + intercept)))
        intent_logits = logits[len(COMPLEXITY_HEADS) :]
        top = max(intent_logits)
        weights = [math.exp(logit - top) for logit in intent_logits]  # softmax, shifted by the maximum
        best = weights.index(max(weights))
        return Classification(
            tier=self.thresholds.tier(probability),
            needs_strong_model_probability=probability,
            tier_probabilities=tier_probabilities(probability, self.thresholds),
            intent=self.intents[best],
            intent_confidence=weights[best] / sum(weights),
            numeric_token_share=numeric_share,
            estimated_input_tokens=n_tokens,
            model_version=self.model_version,
        )
