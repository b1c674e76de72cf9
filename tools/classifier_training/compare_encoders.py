"""Compares text representations for the classifier's heads on the same splits:
`python -m tools.classifier_training.compare_encoders [--encoders NAME ...] [--output FILE]`.

Representations: `bag-of-tokens` (the shipped artifact's features: reference-tokenizer unigrams, hashed bigrams
and the 16 structure features) and each pretrained encoder of `core.classifier_model.encoder.ENCODERS`, alone:
its vector beside the same 16 structure features (standardised as the shipped artifact does). The shipped intent
head reads the bag of tokens and an encoder's vector together (`train`): its figures are in each artifact's
evaluation report. For each, with linear heads only:

- complexity ("needs the strong model", RouteLLM labels), per dataset (GSM8K and MMLU, one head each as shipped):
  L2 strength C chosen by 5-fold cross-validation on that dataset's training prompts (highest mean APGR, as
  `train` does); cross-validated ROC-AUC / APGR (the figures used for choosing), then the held-out test split's.
- transfer (leave one dataset out): the head trained on the other dataset's training prompts, scored on this
  dataset's test prompts.
- intent: the ten-way head, C by validation macro-F1 (as `train` does), test macro-F1.
- CLINC150 (in-scope, 150 intents) and Banking77 (77 intents): a linear probe (`probes`, ridge) trained
  on the dataset's own train split, its alpha by the validation split, accuracy on its test split.
- latency: median in-process time to turn one text into its head scores (encoder + structure features + dot
  products; for `bag-of-tokens`, the shipped artifact's whole `classify`), over single-text calls on test prompts,
  all representations timed in this one run.

Test figures are reported, never used for choosing. Writes `reports/encoders.json` (by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.encoder import ENCODERS, load_encoder
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.evaluate import REPORTS_DIR, SOURCES
from tools.classifier_training.metrics import apgr, routing_curve
from tools.classifier_training.probes import choose_by_validation, probe_accuracies
from tools.classifier_training.splits import TEST, TRAIN, VALIDATION
from tools.classifier_training.train import (
    DEFAULT_SEED,
    INTENT_C_GRID,
    MAX_ITER,
    FeatureSpace,
    choose_complexity_c,
    encode_texts,
)
from tools.classifier_training.training_data import INTENTS, build_training_sets, request_splits
from tools.paths import DATA_DIR

BAG_OF_TOKENS = "bag-of-tokens"
LATENCY_TEXTS = 300
DATASETS = ("gsm8k", "mmlu")


class Representation:
    """Features of texts (`features`) and the serving-time work for one text (`score_one`, which the latency figure
    times): for `bag-of-tokens` that is the shipped artifact's whole `classify`, WordLlama vector included."""

    def __init__(self, model: ClassifierModel, encode: Callable[[list[str]], np.ndarray] | None) -> None:
        self._model, self._encode = model, encode

    def _dense(self, texts: list[str]) -> np.ndarray:
        _, raw = encode_texts(self._model.tokenizer, texts)
        featurizer = self._model.featurizer
        return (raw - featurizer.dense_mean) / featurizer.dense_scale

    def features(self, texts: list[str]) -> Any:
        """Shape (len(texts), columns): a CSR matrix for the bag of tokens, a dense array for an encoder."""
        if self._encode is None:
            return FeatureSpace(self._model.tokenizer, self._model.featurizer).features(texts)
        return np.hstack((self._encode(texts), self._dense(texts)))

    def score_one(self, text: str, weights: np.ndarray) -> np.ndarray:
        """One text's head logits, shape (weights.shape[1],): the serving-time work for one text."""
        if self._encode is None:
            self._model.classify(text)  # the shipped path (focus, features, every head) for one text
            return np.zeros(weights.shape[1])
        return self.features([text])[0] @ weights


def _routing(scores: np.ndarray, labels: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict[str, float]:
    return {"roc_auc": float(roc_auc_score(labels, scores)), "apgr": apgr(routing_curve(scores, weak, strong))}


def _complexity_head(x: Any, prompts: list, seed: int) -> tuple[LogisticRegression, float, dict[str, float]]:
    """C by CV on `prompts` (`train.choose_complexity_c`: highest mean APGR), the head refit on all of them, and the
    CV figures at that C."""
    labels = np.array([p.needs_strong for p in prompts])
    weak = np.array([p.weak_correct for p in prompts])
    strong = np.array([p.strong_correct for p in prompts])
    chars = np.array([len(p.prompt) for p in prompts], dtype=np.float64)
    best, cv = choose_complexity_c(x, labels, weak, strong, chars, seed)
    figures = {"roc_auc": cv["cv_roc_auc_by_c"][str(best)], "apgr": cv["cv_apgr_by_c"][str(best)]}
    return LogisticRegression(C=best, max_iter=MAX_ITER).fit(x, labels), best, figures


def _rows(x: Any, rows: np.ndarray) -> Any:
    """The rows of `x` (array or CSR matrix) where `rows` (bool, shape (x.shape[0],)) is True."""
    return x[np.flatnonzero(rows)]


def compare(names: list[str], data_dir: Path, seed: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The comparison report (module docstring) for `bag-of-tokens` and the encoders in `names`."""
    model = ClassifierModel.load(DEFAULT_ARTIFACT_DIR)
    sets = build_training_sets(data_dir, seed)
    requests = request_splits(data_dir, seed)
    complexity = sets.complexity
    rows: dict[str, Any] = {}
    for name in [BAG_OF_TOKENS, *names]:
        started = time.monotonic()
        if name == BAG_OF_TOKENS:
            kind, encode = "bag of tokens", None
        else:
            encoder = load_encoder(name)
            kind, encode = ENCODERS[name].kind, (lambda texts, e=encoder: e.encode(texts).vectors)
        representation = Representation(model, encode)
        row: dict[str, Any] = {"kind": kind}
        x = {split: representation.features([p.prompt for p in complexity[split]]) for split in (TRAIN, TEST)}
        heads = {}
        for dataset in DATASETS:
            train_rows = np.array([p.dataset == dataset for p in complexity[TRAIN]])
            test_rows = np.array([p.dataset == dataset for p in complexity[TEST]])
            train_prompts = [p for p in complexity[TRAIN] if p.dataset == dataset]
            test_prompts = [p for p in complexity[TEST] if p.dataset == dataset]
            head, c, cv = _complexity_head(_rows(x[TRAIN], train_rows), train_prompts, seed)
            test_args = [np.array([getattr(p, f) for p in test_prompts]) for f in ("needs_strong", "weak_correct",
                                                                                 "strong_correct")]
            heads[dataset] = (head, test_rows, test_args)
            row[dataset] = {
                "c": c,
                "cv": cv,
                "test": _routing(head.decision_function(_rows(x[TEST], test_rows)), *test_args),
                "test_length_baseline": _routing(np.array([len(p.prompt) for p in test_prompts], float), *test_args),
            }
        for dataset, other in zip(DATASETS, reversed(DATASETS), strict=True):
            _, test_rows, test_args = heads[dataset]
            row[dataset]["transfer_from_" + other] = _routing(
                heads[other][0].decision_function(_rows(x[TEST], test_rows)), *test_args
            )
        intent_index = {intent: i for i, intent in enumerate(INTENTS)}
        xi = {split: representation.features([e.text for e in sets.intent[split]]) for split in sets.intent}
        yi = {split: np.array([intent_index[e.intent] for e in sets.intent[split]]) for split in sets.intent}
        macro = lambda truth, guess: float(f1_score(truth, guess, average="macro"))
        intent_head, validation_f1 = choose_by_validation(
            xi[TRAIN], yi[TRAIN], xi[VALIDATION], yi[VALIDATION], INTENT_C_GRID, macro
        )
        row["intent"] = {"validation_macro_f1": validation_f1,
                         "test_macro_f1": macro(yi[TEST], intent_head.predict(xi[TEST]))}
        row.update(probe_accuracies(representation.features, requests, "ridge"))
        weights = np.hstack([heads[d][0].coef_.T for d in DATASETS] + [intent_head.coef_.T])
        sample = [p.prompt for p in complexity[TEST]][:LATENCY_TEXTS]
        timings = []
        for text in sample:
            begin = time.perf_counter()
            representation.score_one(text, weights)
            timings.append((time.perf_counter() - begin) * 1000)
        row["latency_ms_p50"] = statistics.median(timings)
        row["wall_s"] = time.monotonic() - started
        log(f"{name}: {json.dumps(row)}")
        rows[name] = row
    return {
        "name": "classifier_encoders",
        "command": "python -m tools.classifier_training.compare_encoders",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sources": SOURCES,
        "choosing": "cross-validation / validation on the training splits only; test figures are reported only",
        "representations": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=REPORTS_DIR / "encoders.json")
    args = parser.parse_args(argv)
    report = compare(args.encoders, args.data_dir, args.seed)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
