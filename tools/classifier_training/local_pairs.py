"""Routing between the mesh's own real pairs, graded: "needs a larger pair" labels from the profiler's answers.

RouteLLM labels its router from its own pairs' graded answers; these are ours. For a small (weak) and a large
(strong) model-quantization pair, an eval item's label is "needs a larger pair" = the weak pair answered it wrong
AND the strong pair right, from graded answers on disk:
- a profiler report (`quantmesh profile --report-json`, `tools.profiler.report`): `pairs[].profile.model_id` /
  `quantization` and `pairs[].items[].id` / `correct`;
- or an answers JSONL of `benchmarks.routing_real` (`pair`, `item_id`, `correct` per line).

`evaluate_local_pairs` routes held-out items between the two pairs by several scores and grades each routing with
the pairs' real answers (`metrics.routing_curve`: APGR, CPT(50 %)): the shipped classifier's "needs the strong
model" probability (trained on RouteLLM's labels), a head trained on our own pairs' labels on the profiling set
(the same features, L2 strength chosen as the complexity heads' is), prompt length, and a random router.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from core.classification import chat_text
from core.classifier_model.focus import focus
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.metrics import RoutingCurve, apgr, cpt, routing_curve
from tools.classifier_training.train import MAX_ITER, FeatureSpace, choose_complexity_c
from tools.paths import REPO_ROOT
from tools.profiler.eval_set import load_eval_set

WEAK_PAIR = "qwen2.5-coder-0.5b-instruct/w8a8"
STRONG_PAIR = "qwen2.5-coder-1.5b-instruct/w8a8"
PROFILING_EVAL = REPO_ROOT / "deploy" / "profiler" / "real-eval.jsonl"
PROFILING_GRADED = REPO_ROOT / "deploy" / "profiles" / "real.report.json"
HELDOUT_EVAL = REPO_ROOT / "benchmarks" / "data" / "routing-heldout.jsonl"
HELDOUT_GRADED = (
    REPO_ROOT / "tools" / "classifier_training" / "reports" / "heldout-qwen0.5b-w8a8.report.json",
    REPO_ROOT / "benchmarks" / "results" / "routing_real_answers.jsonl",
)


@dataclass(frozen=True)
class PairExample:
    """One eval item graded on both pairs: the text the router classifies, and each pair's correctness."""

    item_id: str
    text: str
    weak_correct: bool
    strong_correct: bool

    @property
    def needs_larger_pair(self) -> bool:
        return self.strong_correct and not self.weak_correct


def load_graded(path: Path, pair: str) -> dict[str, bool]:
    """{item id: correct} of `pair` ("model_id/quantization") in a profiler report or an answers JSONL.

    Raises:
        ValueError: the file grades no item of `pair`.
    """
    graded: dict[str, bool] = {}
    if path.suffix == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["pair"] == pair and not row.get("error"):
                graded[row["item_id"]] = bool(row["correct"])
    else:
        for entry in json.loads(path.read_text(encoding="utf-8"))["pairs"]:
            profile = entry["profile"]
            if f"{profile['model_id']}/{profile['quantization']}" == pair:
                graded.update({item["id"]: bool(item["correct"]) for item in entry["items"]})
    if not graded:
        raise ValueError(f"{path}: no graded answer of the pair {pair}")
    return graded


def pair_examples(eval_path: Path, weak: dict[str, bool], strong: dict[str, bool]) -> list[PairExample]:
    """The items of `eval_path` graded on both pairs, in file order."""
    return [
        PairExample(
            item.id,
            chat_text((turn.role, turn.content) for turn in item.messages or ()),
            weak[item.id],
            strong[item.id],
        )
        for item in load_eval_set(eval_path)
        if item.id in weak and item.id in strong
    ]


def _features(model: ClassifierModel, texts: list[str]) -> Any:
    """The shipped artifact's features of `texts` (CSR, shape (texts, n_features)), on each text's question."""
    return FeatureSpace(model.tokenizer, model.featurizer).features([focus(text).text for text in texts])


def _metrics(curve: RoutingCurve, scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    auc = float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else None
    return {"apgr": apgr(curve), "cpt_50": cpt(curve, 0.5), "roc_auc": auc}


def own_pairs_head(model: ClassifierModel, examples: list[PairExample], seed: int) -> tuple[LogisticRegression, float,
                                                                                          dict[str, Any]]:
    """A logistic regression on "needs a larger pair", C chosen as the complexity heads' is
    (`train.choose_complexity_c`: highest mean APGR over 5 folds of `examples`), and that choice's report."""
    x = _features(model, [e.text for e in examples])
    labels = np.array([e.needs_larger_pair for e in examples])
    weak = np.array([e.weak_correct for e in examples])
    strong = np.array([e.strong_correct for e in examples])
    chars = np.array([len(e.text) for e in examples], dtype=np.float64)
    best, report = choose_complexity_c(x, labels, weak, strong, chars, seed)
    return LogisticRegression(C=best, max_iter=MAX_ITER).fit(x, labels), best, report


def evaluate_local_pairs(
    model: ClassifierModel, train: list[PairExample], heldout: list[PairExample], seed: int
) -> tuple[dict[str, Any], dict[str, RoutingCurve]]:
    """Routing metrics on `heldout` of each score (module docstring), and their curves (for the PNG)."""
    head, c, cv_report = own_pairs_head(model, train, seed)
    texts = [e.text for e in heldout]
    labels = np.array([e.needs_larger_pair for e in heldout])
    weak = np.array([e.weak_correct for e in heldout])
    strong = np.array([e.strong_correct for e in heldout])
    scores = {
        "classifier": np.array([c.needs_strong_model_probability for c in model.classify_batch(texts)]),
        "own_pairs_head": head.decision_function(_features(model, texts)),
        "length_baseline": np.array([len(text) for text in texts], dtype=np.float64),
        "random_router": np.zeros(len(texts)),
    }
    curves = {name: routing_curve(values, weak, strong) for name, values in scores.items()}
    report = {
        "weak_pair": WEAK_PAIR,
        "strong_pair": STRONG_PAIR,
        "train_items": len(train),
        "train_needs_larger_rate": float(np.mean([e.needs_larger_pair for e in train])),
        "own_pairs_head": {"c": c, **cv_report},
        "heldout_items": len(heldout),
        "needs_larger_rate": float(labels.mean()),
        "weak_accuracy": float(weak.mean()),
        "strong_accuracy": float(strong.mean()),
        "routers": {name: _metrics(curves[name], values, labels) for name, values in scores.items()},
    }
    return report, curves
