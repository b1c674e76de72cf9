"""Evaluates an artifact on the held-out test splits: `python -m tools.classifier_training.evaluate [--data-dir DIR]`.

Writes `tools/classifier_training/reports/evaluation.json` and `routing_curve.png` (by default). Every number comes from
the test split, which training never read (checked against the artifact's `test_split_digest`), scored through the
serving code path (`ClassifierModel.classify_batch`: the same answers as `classify` one text at a time). For GSM8K
and MMLU: ROC-AUC and Brier score of the calibrated "needs the strong model" probability, APGR and CPT(50 %) of
routing by it between the weak and the strong model (`metrics`, RouteLLM arXiv 2406.18665), beside a random router
and a prompt-length router (longer prompts go to the strong model first), and a paired bootstrap interval of the
classifier's margin over the length router (the test splits are small: GSM8K has 327 prompts). For intent:
accuracy, macro-F1 and per-intent precision / recall / F1. For wrapping (`wrapping`): how far worked examples, a
system prompt or retrieved passages around each test prompt move its score, tier and intent. For CLINC150 and
Banking77 (`probes`): the accuracy of a logistic-regression probe on the artifact's encoder vector. For our own pairs
(`local_pairs`): routing the held-out items between the 0.5B and 1.5B w8a8 pairs by each score, graded by their real
answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.model import ClassifierModel
from core.vocabulary import ComplexityTier
from tools.classifier_training import local_pairs
from tools.classifier_training.metrics import RoutingCurve, apgr, brier_score, cpt, routing_curve
from tools.classifier_training.probes import probe_accuracies
from tools.classifier_training.splits import TEST, TRAIN
from tools.classifier_training.train import test_split_digest
from tools.classifier_training.training_data import build_training_sets, request_splits
from tools.classifier_training.wrapping import wrappers
from tools.paths import DATA_DIR, REPO_ROOT

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
SOURCES = {
    "routellm": "lm-sys/RouteLLM @ 0b64fdafe049e596a3f5657c219329f24af24198 (Apache-2.0; GSM8K and MMLU are MIT)",
    "clinc150": "clinc/oos-eval @ 828f8093932c8fe6ca7936c3d2e52903b1c523de (CC BY 3.0, Larson et al. 2019)",
    "banking77": "PolyAI-LDN/task-specific-datasets @ 57ec275d8078af65b7731c2a98be812d844a6d6b (CC BY 4.0)",
}


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _router_metrics(curve: RoutingCurve, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "apgr": apgr(curve),
        "cpt_50": cpt(curve, 0.5),
        "cpt_80": cpt(curve, 0.8),
    }


def paired_bootstrap(
    scores: np.ndarray, baseline: np.ndarray, labels: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> dict[str, Any]:
    """ROC-AUC and APGR of `scores` minus those of `baseline` on the same prompts, each with a 95 % percentile
    bootstrap interval (Efron & Tibshirani 1993): `BOOTSTRAP_RESAMPLES` resamples of the prompts with replacement,
    the same resample for both routers; resamples where a metric is undefined (one label only, or both models
    equally accurate) are skipped.

    Args:
        scores: The router's score per prompt, shape (n,).
        baseline: The baseline router's score per prompt, shape (n,).
        labels: "Needs the strong model" per prompt, shape (n,).
        weak: Weak-model correctness per prompt, shape (n,).
        strong: Strong-model correctness per prompt, shape (n,).
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    margins: dict[str, list[float]] = {"roc_auc": [], "apgr": []}
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, labels.size, labels.size)
        if labels[rows].all() or not labels[rows].any() or weak[rows].mean() == strong[rows].mean():
            continue
        margins["roc_auc"].append(
            roc_auc_score(labels[rows], scores[rows]) - roc_auc_score(labels[rows], baseline[rows])
        )
        margins["apgr"].append(
            apgr(routing_curve(scores[rows], weak[rows], strong[rows]))
            - apgr(routing_curve(baseline[rows], weak[rows], strong[rows]))
        )
    point = {
        "roc_auc": roc_auc_score(labels, scores) - roc_auc_score(labels, baseline),
        "apgr": apgr(routing_curve(scores, weak, strong)) - apgr(routing_curve(baseline, weak, strong)),
    }
    report: dict[str, Any] = {
        metric: {
            "difference": float(point[metric]),
            "ci95": [float(q) for q in np.percentile(values, [2.5, 97.5])],
            "share_of_resamples_above_zero": float(np.mean(np.asarray(values) > 0)),
        }
        for metric, values in margins.items()
    }
    report["resamples"] = len(margins["apgr"])
    return report


def evaluate_complexity(
    model: ClassifierModel, prompts: list[Any], base_rate: float
) -> tuple[dict[str, Any], dict[str, RoutingCurve]]:
    """Metrics of the classifier and the two baselines on one dataset's test prompts, and their routing curves."""
    probability = np.array(
        [c.needs_strong_model_probability for c in model.classify_batch([p.prompt for p in prompts])]
    )
    length = np.array([len(p.prompt) for p in prompts], dtype=np.float64)
    constant = np.zeros(len(prompts))  # all ties: the expected curve of a random router
    labels = np.array([p.needs_strong for p in prompts])
    weak = np.array([p.weak_correct for p in prompts])
    strong = np.array([p.strong_correct for p in prompts])
    curves = {
        name: routing_curve(scores, weak, strong)
        for name, scores in (
            ("classifier", probability),
            ("length_baseline", length),
            ("random_router", constant),
        )
    }
    classifier = _router_metrics(curves["classifier"], probability, labels)
    classifier["brier"] = brier_score(probability, labels)
    tiers = [model.thresholds.tier(p) for p in probability]
    report = {
        "prompts": len(prompts),
        "needs_strong_rate": float(labels.mean()),
        "weak_accuracy": float(weak.mean()),
        "strong_accuracy": float(strong.mean()),
        "perfect_router_accuracy": float(np.maximum(weak, strong).mean()),
        "classifier": classifier,
        "length_baseline": _router_metrics(curves["length_baseline"], length, labels),
        "random_router": _router_metrics(curves["random_router"], constant, labels),
        "classifier_minus_length": paired_bootstrap(probability, length, labels, weak, strong),
        "brier_of_training_base_rate": brier_score(np.full(len(prompts), base_rate), labels),
        "tiers": {
            tier: {
                "share": float(np.mean([t == tier for t in tiers])),
                "needs_strong_rate": float(labels[[t == tier for t in tiers]].mean())
                if tier in tiers
                else None,
            }
            for tier in ComplexityTier.known()
        },
    }
    return report, curves


def evaluate_intent(model: ClassifierModel, examples: list[Any]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the intents present in the test split) and per-intent scores."""
    truth = [e.intent for e in examples]
    predicted = [c.intent for c in model.classify_batch([e.text for e in examples])]
    present = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=present, zero_division=0
    )
    by_origin: dict[str, list[bool]] = {}
    for example, guess in zip(examples, predicted, strict=True):
        by_origin.setdefault(
            example.origin.rsplit(":", 1)[0]
            if example.origin.startswith("template:")
            else example.origin.split(":")[0],
            [],
        ).append(guess == example.intent)
    return {
        "examples": len(examples),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)),
        "per_intent": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)
        },
        "accuracy_by_origin": {origin: float(np.mean(hits)) for origin, hits in sorted(by_origin.items())},
    }


# The stated tolerance (issue 24): wrapping a question moves its score by less than this, and its tier by at most one
# step. Measured before `focus`: 5-shot MMLU questions moved by 0.83 at the median and all went to HARD.
WRAPPING_MAX_SCORE_SHIFT = 0.1
_TIER_STEP = {tier: step for step, tier in enumerate(ComplexityTier.known())}


def evaluate_wrapping(model: ClassifierModel, prompts: list[Any], wrap: dict[str, Any]) -> dict[str, Any]:
    """How far each wrapping (`wrapping.WRAPPINGS`) moves the test prompts' scores, tiers and intents, per dataset:
    median / p95 / max absolute shift of `needs_strong_model_probability`, the share whose tier changed, the largest
    tier step, the share whose intent changed, and the share `question_focused` flagged."""
    bare = model.classify_batch([p.prompt for p in prompts])
    report: dict[str, Any] = {}
    for name, wrapper in wrap.items():
        wrapped = model.classify_batch([wrapper(p) for p in prompts])
        report[name] = {}
        for dataset in sorted({p.dataset for p in prompts}):
            rows = [i for i, p in enumerate(prompts) if p.dataset == dataset]
            shift = np.array(
                [abs(wrapped[i].needs_strong_model_probability - bare[i].needs_strong_model_probability) for i in rows]
            )
            steps = np.array([abs(_TIER_STEP[wrapped[i].tier] - _TIER_STEP[bare[i].tier]) for i in rows])
            report[name][dataset] = {
                "prompts": len(rows),
                "score_shift_median": float(np.median(shift)),
                "score_shift_p95": float(np.percentile(shift, 95)),
                "score_shift_max": float(shift.max()),
                "tier_changed_share": float(np.mean(steps > 0)),
                "tier_steps_max": int(steps.max()),
                "intent_changed_share": float(np.mean([wrapped[i].intent != bare[i].intent for i in rows])),
                "question_focused_share": float(np.mean([wrapped[i].question_focused for i in rows])),
            }
    return report


def plot_curves(curves: dict[str, dict[str, RoutingCurve]], path: Path) -> None:
    """Quality against the share of calls to the strong model, one panel per dataset."""
    figure, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5))
    for axis, (dataset, by_router) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        for name, curve in by_router.items():
            axis.plot(curve.strong_share * 100, curve.quality * 100, label=f"{name} (APGR {apgr(curve):.3f})")
        reference = next(iter(by_router.values()))
        axis.axhline(reference.weak_quality * 100, color="grey", linestyle=":", label="weak model only")
        axis.axhline(reference.strong_quality * 100, color="black", linestyle="--", label="strong model only")
        axis.set_title(f"{dataset} (held out)")
        axis.set_xlabel("calls to the strong model (%)")
        axis.set_ylabel("accuracy (%)")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def evaluate(
    data_dir: Path, artifact_dir: Path, output_dir: Path, traffic_path: Path | None = None
) -> dict[str, Any]:
    """Scores the artifact on the test splits; writes evaluation.json and routing_curve.png; returns the report.

    Raises:
        ValueError: the splits rebuilt from `data_dir` are not the ones the artifact was trained against.
    """
    model = ClassifierModel.load(artifact_dir)
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    sets = build_training_sets(data_dir, int(manifest["params"]["seed"]), traffic_path)
    if test_split_digest(sets) != manifest["test_split_digest"]:
        raise ValueError(
            "the test split rebuilt from the data differs from the one the artifact was trained "
            "against: different data, traffic file or seed"
        )
    complexity: dict[str, Any] = {}
    curves: dict[str, dict[str, RoutingCurve]] = {}
    for dataset in sorted({p.dataset for p in sets.complexity[TEST]}):
        train_labels = [p.needs_strong for p in sets.complexity[TRAIN] if p.dataset == dataset]
        complexity[dataset], curves[dataset] = evaluate_complexity(
            model, [p for p in sets.complexity[TEST] if p.dataset == dataset], float(np.mean(train_labels))
        )
    intent = evaluate_intent(model, sets.intent[TEST])
    probes = probe_accuracies(
        lambda texts: model.encoder.encode(texts).vectors, request_splits(data_dir, int(manifest["params"]["seed"])),
        "logistic",
    )
    wrapping = evaluate_wrapping(model, sets.complexity[TEST], wrappers(data_dir, sets.complexity[TRAIN]))
    pairs_train = local_pairs.pair_examples(
        local_pairs.PROFILING_EVAL,
        local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.WEAK_PAIR),
        local_pairs.load_graded(local_pairs.PROFILING_GRADED, local_pairs.STRONG_PAIR),
    )
    weak_graded, strong_graded = local_pairs.HELDOUT_GRADED
    pairs_heldout = local_pairs.pair_examples(
        local_pairs.HELDOUT_EVAL,
        local_pairs.load_graded(weak_graded, local_pairs.WEAK_PAIR),
        local_pairs.load_graded(strong_graded, local_pairs.STRONG_PAIR),
    )
    pairs, curves["our pairs: 0.5B w8a8 -> 1.5B w8a8"] = local_pairs.evaluate_local_pairs(
        model, pairs_train, pairs_heldout, int(manifest["params"]["seed"])
    )
    figures = {
        f"{dataset}_{metric}": complexity[dataset]["classifier"][metric]
        for dataset in complexity
        for metric in ("apgr", "roc_auc")
    }
    figures["intent_macro_f1"] = intent["macro_f1"]
    figures["intent_accuracy"] = intent["accuracy"]
    figures.update({f"{dataset}_accuracy": probe["test_accuracy"] for dataset, probe in probes.items()})
    figures["local_pairs_apgr"] = pairs["routers"]["classifier"]["apgr"]
    figures["local_pairs_own_head_apgr"] = pairs["routers"]["own_pairs_head"]["apgr"]
    figures["wrapping_score_shift_max"] = max(d["score_shift_max"] for w in wrapping.values() for d in w.values())
    figures["wrapping_tier_steps_max"] = max(d["tier_steps_max"] for w in wrapping.values() for d in w.values())
    report = {
        "name": "classifier_evaluation",
        "model_version": model.model_version,
        "command": "python -m tools.classifier_training.evaluate",
        "split": "test (held out: never read by training; thresholds and calibration chosen on validation)",
        "sources": SOURCES,
        "split_sizes": manifest["split_sizes"],
        "tier_thresholds": manifest["tier_thresholds"],
        "figures": figures,
        "complexity": complexity,
        "intent": intent,
        "probes": {
            "what": f"a logistic regression on the encoder's vector ({model.encoder_name}) of each text, trained on "
            "the dataset's train split, C by its validation split, accuracy on its test split (probes.py)",
            **probes,
        },
        "local_pairs": {
            "what": "held-out items (benchmarks/data/routing-heldout.jsonl) routed between two real pairs by each "
            "score, graded by their real answers (tools/classifier_training/local_pairs.py)",
            "graded_by": {
                "profiling_set": str(local_pairs.PROFILING_GRADED.relative_to(REPO_ROOT)),
                "heldout": [str(path.relative_to(REPO_ROOT)) for path in local_pairs.HELDOUT_GRADED],
            },
            **pairs,
        },
        "wrapping": {
            "what": "test prompts wrapped in 5 worked examples, a system prompt, or labelled retrieved passages "
            "(tools/classifier_training/wrapping.py), against the same prompts bare",
            "tolerance": {"score_shift_max": WRAPPING_MAX_SCORE_SHIFT, "tier_steps_max": 1},
            "by_wrapping": wrapping,
        },
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curves(curves, output_dir / "routing_curve.png")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--artifact-dir", type=Path, default=DEFAULT_ARTIFACT_DIR)
    parser.add_argument(
        "--traffic", type=Path, default=None, help="the labelled-traffic JSONL used in training"
    )
    parser.add_argument("--output-dir", type=Path, default=REPORTS_DIR)
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.data_dir, args.artifact_dir, args.output_dir, args.traffic)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report["figures"], indent=2))
    for dataset, metrics in report["complexity"].items():
        print(
            dataset,
            {
                name: round(metrics[name]["apgr"], 3)
                for name in ("classifier", "length_baseline", "random_router")
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
