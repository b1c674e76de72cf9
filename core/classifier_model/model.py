"""The classifier at serving time: texts in, one `Classification` each out, in pure numpy (no sklearn per call).

Complexity has two logistic-regression heads, picked by the prompt's format: `multiple_choice` (two or more
answer-choice lines such as "A. ..."; trained on MMLU) and `open_ended` (everything else; trained on GSM8K). Each
head's logit is calibrated by Platt scaling fitted on the validation split. Intent is one multinomial logistic
regression over the same features and a pretrained encoder's vector of the text (`encoder`, named and checksummed
in the artifact's manifest). The complexity heads read that vector too when the artifact has
`complexity_encoder_weights` (a fine-tuned MiniLM; README.md, "One encoder for every head"). Both score the text's question without its wrapping (`focus`); the token
estimate and the numeric share cover the whole text. See README.md for the data and the evaluation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.classification import Classification
from core.classifier_model.artifact import Artifact, ArtifactError, load_artifact
from core.classifier_model.encoder import Encoded, load_encoder
from core.classifier_model.features import DENSE_FEATURES, Featurizer, dense_raw
from core.classifier_model.focus import focus
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
        ArtifactError: the tokenizer in the artifact cannot be loaded or does not match the weights, or the encoder
            it names is not installed or its files differ from the ones it was trained with.
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
        self.encoder_name = str(manifest["encoder"]["name"])
        self.encoder = load_encoder(self.encoder_name, manifest["encoder"]["files"], artifact.trained_layers_path)
        # One output column per complexity head (zeros when they do not read the vector), then one per intent.
        intent_encoder = arrays["intent_encoder_weights"]
        complexity_encoder = arrays.get(
            "complexity_encoder_weights", np.zeros((len(COMPLEXITY_HEADS), intent_encoder.shape[0]))
        )
        self._encoder_weights = np.hstack((complexity_encoder.T, intent_encoder)).astype(np.float64)
        if self.encoder.dim != self._encoder_weights.shape[0]:
            raise ArtifactError(
                f"encoder {self.encoder_name} gives {self.encoder.dim} dimensions but the weights expect "
                f"{self._encoder_weights.shape[0]}"
            )

    @classmethod
    def load(cls, directory: Path) -> ClassifierModel:
        """Loads and verifies the artifact in `directory`. Raises `ArtifactError` (see `load_artifact`)."""
        return cls(load_artifact(directory))

    def classify(self, text: str) -> Classification:
        """Classifies one text (any length; the service enforces its size limit before calling this): the answer
        `classify_batch` gives for it, bit for bit, with the token block built for one text (`Featurizer.token_row`)."""
        question = focus(text)
        ids = self.tokenizer.encode(question.text)
        share = self.tokenizer.numeric_token_share(ids)
        raw = np.array([dense_raw(question.text, len(ids), share)], dtype=np.float64)
        columns, values = self.featurizer.token_row(ids)
        logits = (values @ self._token_weights[columns]).reshape(1, self._bias.size)
        whole = self.tokenizer.encode(text) if question.wrapped else ids
        return self._classifications(
            raw, logits, self.encoder.encode([question.bare_text]), [self._whole_text(whole, question.wrapped, share)]
        )[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Classification]:
        """Classifies several texts at once: the same answers as `classify` one by one, bit for bit (every
        reduction runs within one text's row), for less time per text than one call each."""
        questions = [focus(text) for text in texts]
        ids = self.tokenizer.encode_batch([question.text for question in questions])
        numeric_shares = [self.tokenizer.numeric_token_share(row) for row in ids]
        raw = np.array(
            [
                dense_raw(question.text, len(row), share)
                for question, row, share in zip(questions, ids, numeric_shares, strict=True)
            ],
            dtype=np.float64,
        ).reshape(len(texts), len(DENSE_FEATURES))
        tokens = self.featurizer.token_rows(ids)
        columns, values, bounds = tokens.columns, tokens.values, tokens.indptr.tolist()
        # One dot product per row, on that row's entries only: a text's logits do not depend on the rest of the batch
        # (numpy's segmented sums and BLAS matrix products change their summation order with the batch's shape).
        logits = np.array(
            [values[start:end] @ self._token_weights[columns[start:end]] for start, end in itertools.pairwise(bounds)]
        ).reshape(len(texts), self._bias.size)
        wholes = [
            self._whole_text(self.tokenizer.encode(text) if question.wrapped else row, question.wrapped, share)
            for text, question, row, share in zip(texts, questions, ids, numeric_shares, strict=True)
        ]
        return self._classifications(raw, logits, self.encoder.encode([q.bare_text for q in questions]), wholes)

    def _whole_text(self, ids: list[int], wrapped: bool, question_share: float) -> tuple[float, int, bool]:
        """(numeric share, token count, question_focused) of the whole text, from its token ids."""
        share = self.tokenizer.numeric_token_share(ids) if wrapped else question_share
        return share, len(ids), wrapped

    def _classifications(
        self, raw: np.ndarray, logits: np.ndarray, encoded: Encoded, wholes: list[tuple[float, int, bool]]
    ) -> list[Classification]:
        """The classifications of texts from their questions' raw dense features, shape (texts, len(DENSE_FEATURES)),
        token logits, shape (texts, heads + intents) (updated in place), encoder vectors, and each whole text's
        `_whole_text`."""
        dense = (raw - self.featurizer.dense_mean) / self.featurizer.dense_scale
        # Not `@`: a BLAS product's summation order depends on the batch's shape; this sum runs within each row.
        logits += (dense[:, :, None] * self._dense_weights).sum(axis=1) + self._bias
        for row, vector in enumerate(encoded.vectors):  # one vector-matrix product per row, same shape alone or batched
            logits[row] += vector @ self._encoder_weights
        return [
            self._classification(row_logits, head, *whole, truncated)
            for row_logits, head, whole, truncated in zip(
                logits.tolist(), complexity_heads(raw).tolist(), wholes, encoded.truncated, strict=True
            )
        ]

    def _classification(
        self,
        logits: list[float],
        head: int,
        numeric_share: float,
        n_tokens: int,
        question_focused: bool,
        encoder_truncated: bool,
    ) -> Classification:
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
            question_focused=question_focused,
            encoder_truncated=encoder_truncated,
        )
