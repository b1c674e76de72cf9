"""Trains the classifier artifact: `python -m tools.classifier_training.train [--data-dir DIR] [--traffic FILE] [--output-dir DIR]`.

Steps (all deterministic for the same data, seed and library versions; see README.md):
1. Build the splits (`training_data.build_training_sets`): the test split is never read here.
2. Train the reference tokenizer (byte-level BPE) on the training texts.
3. Complexity: for each head (`model.COMPLEXITY_HEADS`), choose the L2 strength C by 5-fold cross-validation on the
   training prompts (highest mean APGR), fit a logistic regression on token unigrams + structure features, then
   fit Platt scaling on the validation prompts; tier thresholds from the validation routing curve (`tiers`). The
   manifest records each head's cross-validated and validation ROC-AUC and APGR beside the prompt-length baseline's.
4. Intent: multinomial logistic regression on all features, C chosen by validation macro-F1.
5. Write `manifest.json`, `model.npz`, `reference_tokenizer.json` to the output directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from core.classifier_model import artifact as artifact_io
from core.classifier_model.features import (
    DENSE_FEATURES,
    Featurizer,
    dense_raw,
    fit_dense_standardisation,
    rows_to_csr,
)
from core.classifier_model.model import COMPLEXITY_HEADS, complexity_heads
from core.classifier_model.reference_tokenizer import (
    VOCAB_SIZE,
    ReferenceTokenizer,
    train_reference_tokenizer,
)
from tools.classifier_training.data import data_fingerprint
from tools.classifier_training.metrics import apgr, routing_curve
from tools.classifier_training.splits import TRAIN, VALIDATION
from tools.classifier_training.thresholds import choose_thresholds
from tools.classifier_training.training_data import INTENTS, TrainingSets, build_training_sets
from tools.paths import DATA_DIR

DEFAULT_SEED = 20240601
BIGRAM_BUCKETS = 2**15
COMPLEXITY_C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
INTENT_C_GRID = (1.0, 3.0, 10.0)
CV_FOLDS = 5
MAX_ITER = 3000


def encode_texts(tokenizer: ReferenceTokenizer, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
    """Token ids and raw dense features of each text, shape (len(texts), len(DENSE_FEATURES))."""
    ids = tokenizer.encode_batch(texts)
    dense = np.array(
        [
            dense_raw(text, len(row), tokenizer.numeric_token_share(row))
            for text, row in zip(texts, ids, strict=True)
        ]
    ).reshape(len(texts), len(DENSE_FEATURES))
    return ids, dense


def complexity_columns(featurizer: Featurizer) -> np.ndarray:
    """Columns the complexity heads use: token unigrams and dense features (bigrams did not help in CV)."""
    return np.concatenate(
        (np.arange(featurizer.vocab_size), np.arange(featurizer.dense_offset, featurizer.n_features))
    )


def _routing_scores(scores: np.ndarray, labels: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict[str, float]:
    return {"roc_auc": float(roc_auc_score(labels, scores)), "apgr": apgr(routing_curve(scores, weak, strong))}


def choose_complexity_c(
    x: sp.csr_matrix, labels: np.ndarray, weak: np.ndarray, strong: np.ndarray, n_chars: np.ndarray, seed: int
) -> tuple[float, dict[str, Any]]:
    """The C of `COMPLEXITY_C_GRID` with the highest mean cross-validated APGR on the training prompts.

    Returns:
        That C, and the report: mean APGR and ROC-AUC of each C over the folds, and of the prompt-length baseline
        (`n_chars`, characters per prompt) on the same folds.
    """
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed % 2**31).split(x, labels))
    by_c: dict[str, dict[str, float]] = {}
    for c in COMPLEXITY_C_GRID:
        fold_scores = []
        for fit_rows, score_rows in folds:
            model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x[fit_rows], labels[fit_rows])
            fold_scores.append(
                _routing_scores(
                    model.decision_function(x[score_rows]), labels[score_rows], weak[score_rows], strong[score_rows]
                )
            )
        by_c[str(c)] = {name: float(np.mean([f[name] for f in fold_scores])) for name in ("apgr", "roc_auc")}
    length = [_routing_scores(n_chars[rows], labels[rows], weak[rows], strong[rows]) for _, rows in folds]
    best = max(COMPLEXITY_C_GRID, key=lambda c: by_c[str(c)]["apgr"])
    return best, {
        "cv_apgr_by_c": {c: scores["apgr"] for c, scores in by_c.items()},
        "cv_roc_auc_by_c": {c: scores["roc_auc"] for c, scores in by_c.items()},
        "cv_length_baseline": {name: float(np.mean([f[name] for f in length])) for name in ("apgr", "roc_auc")},
    }


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling (Platt 1999): slope and intercept of a 1-D logistic regression of labels on logits."""
    model = LogisticRegression(C=1e6, max_iter=MAX_ITER).fit(logits.reshape(-1, 1), labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def model_version(fingerprint: str, params: dict[str, Any]) -> str:
    """`clf-` and 16 hex digits of SHA-256 over the training data fingerprint and the parameters."""
    digest = hashlib.sha256((fingerprint + json.dumps(params, sort_keys=True)).encode()).hexdigest()
    return f"clf-{digest[:16]}"


def test_split_digest(sets: TrainingSets) -> str:
    """SHA-256 of the sorted test texts of both heads: `evaluate` checks it to score the split training left out."""
    digest = hashlib.sha256()
    for text in sorted(
        [f"c:{p.dataset}:{p.prompt}" for p in sets.complexity["test"]]
        + [f"i:{e.intent}:{e.text}" for e in sets.intent["test"]]
    ):
        digest.update(text.encode())
    return digest.hexdigest()


def train(
    data_dir: Path,
    output_dir: Path,
    seed: int = DEFAULT_SEED,
    traffic_path: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Trains and writes the artifact; returns its manifest."""
    started = time.monotonic()
    sets = build_training_sets(data_dir, seed, traffic_path)
    complexity_train, complexity_validation = sets.complexity[TRAIN], sets.complexity[VALIDATION]
    intent_train, intent_validation = sets.intent[TRAIN], sets.intent[VALIDATION]
    log(
        f"splits: complexity train {len(complexity_train)} / validation {len(complexity_validation)}, "
        f"intent train {len(intent_train)} / validation {len(intent_validation)}"
    )

    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = output_dir / artifact_io.TOKENIZER
    train_reference_tokenizer(
        [p.prompt for p in complexity_train] + [e.text for e in intent_train], VOCAB_SIZE
    ).save(str(tokenizer_path))
    tokenizer = ReferenceTokenizer(tokenizer_path)

    train_ids, train_dense = encode_texts(tokenizer, [p.prompt for p in complexity_train])
    validation_ids, validation_dense = encode_texts(tokenizer, [p.prompt for p in complexity_validation])
    intent_train_ids, intent_train_dense = encode_texts(tokenizer, [e.text for e in intent_train])
    intent_validation_ids, intent_validation_dense = encode_texts(
        tokenizer, [e.text for e in intent_validation]
    )
    mean, scale = fit_dense_standardisation(np.vstack((train_dense, intent_train_dense)))
    featurizer = Featurizer(tokenizer.vocab_size, BIGRAM_BUCKETS, mean, scale)

    def matrix(ids: list[list[int]], dense: np.ndarray) -> sp.csr_matrix:
        return rows_to_csr(featurizer, featurizer.token_rows(ids), (dense - mean) / scale)

    x_train, x_validation = matrix(train_ids, train_dense), matrix(validation_ids, validation_dense)
    columns = complexity_columns(featurizer)
    heads_train, heads_validation = complexity_heads(train_dense), complexity_heads(validation_dense)
    labels_train = np.array([p.needs_strong for p in complexity_train])
    labels_validation = np.array([p.needs_strong for p in complexity_validation])
    weak_train = np.array([p.weak_correct for p in complexity_train])
    strong_train = np.array([p.strong_correct for p in complexity_train])
    weak_validation = np.array([p.weak_correct for p in complexity_validation])
    strong_validation = np.array([p.strong_correct for p in complexity_validation])
    chars_train = np.array([len(p.prompt) for p in complexity_train], dtype=np.float64)
    chars_validation = np.array([len(p.prompt) for p in complexity_validation], dtype=np.float64)

    weights = np.zeros((len(COMPLEXITY_HEADS), featurizer.n_features))
    bias = np.zeros(len(COMPLEXITY_HEADS))
    calibration = np.zeros((len(COMPLEXITY_HEADS), 2))
    validation_probability = np.zeros(len(complexity_validation))
    head_report: dict[str, Any] = {}
    for head, name in enumerate(COMPLEXITY_HEADS):
        rows = heads_train == head
        x_head = x_train[rows][:, columns]
        c, cv_report = choose_complexity_c(
            x_head, labels_train[rows], weak_train[rows], strong_train[rows], chars_train[rows], seed
        )
        model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_head, labels_train[rows])
        weights[head, columns] = model.coef_[0]
        bias[head] = model.intercept_[0]
        validation_rows = heads_validation == head
        logits = model.decision_function(x_validation[validation_rows][:, columns])
        calibration[head] = fit_platt(logits, labels_validation[validation_rows])
        validation_probability[validation_rows] = 1 / (
            1 + np.exp(-(calibration[head, 0] * logits + calibration[head, 1]))
        )
        validation_args = (
            labels_validation[validation_rows], weak_validation[validation_rows], strong_validation[validation_rows]
        )
        head_report[name] = {
            "c": c,
            **cv_report,
            "validation": _routing_scores(logits, *validation_args),
            "validation_length_baseline": _routing_scores(chars_validation[validation_rows], *validation_args),
            "train_prompts": int(rows.sum()),
            "validation_prompts": int(validation_rows.sum()),
        }
        log(f"complexity head {name}: C={c}, {int(rows.sum())} training prompts, {head_report[name]}")
    thresholds = choose_thresholds(validation_probability, weak_validation, strong_validation)
    log(f"tier thresholds (validation): {thresholds}")

    intent_index = {name: i for i, name in enumerate(INTENTS)}
    x_intent_train = matrix(intent_train_ids, intent_train_dense)
    x_intent_validation = matrix(intent_validation_ids, intent_validation_dense)
    y_intent_train = np.array([intent_index[e.intent] for e in intent_train])
    y_intent_validation = np.array([intent_index[e.intent] for e in intent_validation])
    best_f1, intent_model, intent_c = -1.0, None, None
    intent_scores: dict[str, float] = {}
    for c in INTENT_C_GRID:
        candidate = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_intent_train, y_intent_train)
        f1 = float(f1_score(y_intent_validation, candidate.predict(x_intent_validation), average="macro"))
        intent_scores[str(c)] = f1
        if f1 > best_f1:
            best_f1, intent_model, intent_c = f1, candidate, c
    assert intent_model is not None
    log(f"intent: C={intent_c} (validation macro-F1 by C {intent_scores})")
    intent_weights = np.zeros((featurizer.n_features, len(INTENTS)))
    intent_bias = np.full(len(INTENTS), -1e4)  # intents with no training examples (OTHER) are never predicted
    intent_weights[:, intent_model.classes_] = intent_model.coef_.T
    intent_bias[intent_model.classes_] = intent_model.intercept_

    artifact_io.write_weights(
        output_dir / artifact_io.WEIGHTS,
        {
            "dense_mean": mean,
            "dense_scale": scale,
            "complexity_weights": weights.astype(np.float32),
            "complexity_bias": bias,
            "complexity_calibration": calibration,
            "intent_weights": intent_weights.astype(np.float32),
            "intent_bias": intent_bias,
        },
    )
    fingerprint = data_fingerprint(data_dir)
    if traffic_path is not None:
        fingerprint = hashlib.sha256(
            (fingerprint + artifact_io.sha256_file(traffic_path)).encode()
        ).hexdigest()
    params = {
        "seed": seed,
        "vocab_size": VOCAB_SIZE,
        "bigram_buckets": BIGRAM_BUCKETS,
        "complexity_c_grid": COMPLEXITY_C_GRID,
        "intent_c_grid": INTENT_C_GRID,
        "cv_folds": CV_FOLDS,
        "traffic": traffic_path is not None,
    }
    manifest = {
        "model_version": model_version(fingerprint, params),
        "trained_by": "python -m tools.classifier_training.train",
        "params": params,
        "data_fingerprint": fingerprint,
        "test_split_digest": test_split_digest(sets),
        "split_sizes": {
            "complexity": {split: len(items) for split, items in sets.complexity.items()},
            "intent": {split: len(items) for split, items in sets.intent.items()},
        },
        "vocab_size": tokenizer.vocab_size,
        "bigram_buckets": BIGRAM_BUCKETS,
        "n_features": featurizer.n_features,
        "dense_features": list(DENSE_FEATURES),
        "complexity_heads": list(COMPLEXITY_HEADS),
        "complexity_training": head_report,
        "tier_thresholds": {"complex_from": thresholds.complex_from, "hard_from": thresholds.hard_from},
        "intents": list(INTENTS),
        "intent_training": {"c": intent_c, "validation_macro_f1_by_c": intent_scores},
    }
    artifact_io.write_manifest(output_dir, manifest)
    log(f"wrote {output_dir} ({manifest['model_version']}) in {time.monotonic() - started:.0f} s")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="the evaluation data folder (default: data/ in the repository)",
    )
    parser.add_argument(
        "--traffic",
        type=Path,
        default=None,
        help="optional JSONL of your own labelled traffic (schema in README.md)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=artifact_io.DEFAULT_ARTIFACT_DIR,
        help="where to write the artifact (default: the shipped core/classifier_model/artifacts)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split and cross-validation seed")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"--data-dir {args.data_dir} is not a directory", file=sys.stderr)
        return 2
    train(args.data_dir, args.output_dir, args.seed, args.traffic)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
