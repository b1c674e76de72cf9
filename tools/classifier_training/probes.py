"""Linear probes of a text representation on CLINC150 (150 in-scope intents) and Banking77 (77 intents): how much
of each dataset's fine-grained intent a representation holds, beyond the classifier's 9 intents.

A linear classifier per dataset, trained on its train split (`training_data.request_splits`), its regularisation
chosen by validation accuracy, accuracy reported on its test split (CLINC150: Larson et al. 2019; Banking77:
Casanueva et al. 2020). Two kinds (`PROBES`): `logistic` (multinomial logistic regression, what a served head is;
for an encoder's dense vector) and `ridge` (a ridge classifier, for the bag of tokens: a 150-way logistic fit on its
41k columns took over 10 minutes here). On the fine-tuned MiniLM's vectors the ridge probe scores lower (CLINC150
test 0.942 against 0.960).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import accuracy_score

from tools.classifier_training.splits import TEST, TRAIN, VALIDATION
from tools.classifier_training.train import MAX_ITER

PROBED_DATASETS = ("clinc150", "banking77")


@dataclass(frozen=True)
class Probe:
    """A kind of linear probe: `make(value)` for each regularisation value of `grid`."""

    grid: tuple[float, ...]
    make: Callable[[float], Any]


PROBES = {
    "logistic": Probe((1.0, 10.0, 100.0), lambda c: LogisticRegression(C=c, max_iter=MAX_ITER)),
    "ridge": Probe((0.1, 1.0), lambda alpha: RidgeClassifier(alpha=alpha)),
}


def choose_by_validation(
    x_train: Any,
    y_train: np.ndarray,
    x_val: Any,
    y_val: np.ndarray,
    grid: tuple,
    metric: Callable[[np.ndarray, np.ndarray], float],
    make: Callable[[float], Any] = PROBES["logistic"].make,
) -> tuple[Any, float]:
    """The linear model (`make(value)` for each value of `grid`, fitted on the training rows) that scores best by
    `metric` on the validation rows, and that score."""
    best: tuple[float, Any] = (-1.0, None)
    for value in grid:
        head = make(value).fit(x_train, y_train)
        score = metric(y_val, head.predict(x_val))
        if score > best[0]:
            best = (score, head)
    assert best[1] is not None
    return best[1], best[0]


def probe_accuracies(
    features: Callable[[list[str]], Any], requests: dict[str, list], kind: str
) -> dict[str, dict[str, Any]]:
    """Per dataset of `PROBED_DATASETS`: {"labels", "probe", "validation_accuracy", "test_accuracy"} of the probe
    `PROBES[kind]` on `features(texts)` (shape (len(texts), columns), dense or CSR), `requests` being
    `request_splits`'s texts."""
    probe = PROBES[kind]
    report = {}
    for source in PROBED_DATASETS:
        texts = {
            split: [t for t in requests[split] if t.source == source] for split in (TRAIN, VALIDATION, TEST)
        }
        xs = {split: features([t.text for t in items]) for split, items in texts.items()}
        ys = {split: np.array([t.label for t in items]) for split, items in texts.items()}
        head, validation_accuracy = choose_by_validation(
            xs[TRAIN], ys[TRAIN], xs[VALIDATION], ys[VALIDATION], probe.grid, accuracy_score, probe.make
        )
        report[source] = {
            "labels": len(set(ys[TRAIN])),
            "probe": kind,
            "validation_accuracy": float(validation_accuracy),
            "test_accuracy": float(accuracy_score(ys[TEST], head.predict(xs[TEST]))),
        }
    return report
