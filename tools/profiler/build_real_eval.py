"""Builds the graded eval sets of the real pairs: one to profile them, one held out for routing.

    .venv/bin/python -m tools.profiler.build_real_eval [--data-dir data] [--profile-items 60,40,40]
        [--heldout-items 80,60,60] [--seed 0]

Writes `deploy/profiler/real-eval.jsonl` (the profiler's input: the accuracy per tier in every real profile comes
from it) and `benchmarks/data/routing-heldout.jsonl` (the prompts `make demo` and `benchmarks/routing_real.py` route).
Both hold three tasks with reference answers that small models can partly solve, so that pairs and tiers differ:
- GSM8K (MIT, `data/gsm8k/`): the reference is the number after "#### " in the dataset's answer. Profiling items come
  from GSM8K's train split; held-out items from its test split, restricted to the questions in the classifier's own
  test split (RouteLLM's GSM8K prompts are the test questions verbatim), so the classifier never trained on either.
- CLINC150 (CC BY 3.0, `data/clinc150/`) and Banking77 (CC BY 4.0, `data/banking77/`): intent detection as
  four-way multiple choice. The options are the true intent and three others drawn at random (CLINC150: from the
  same domain, `domains.json`); both sets come from the datasets' test splits, which the classifier never trained on,
  and are disjoint.
Tiers are the deployed classifier's (`core.classifier_model`, the artifact the classifier service loads, on the text
the router classifies, `core.classification.chat_text`): a tier's items are those the classifier puts in that
tier, as in production. Every reference is checked when the item is
built; an item without a usable reference stops the build with its source line number.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.classification import chat_text
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.model import ClassifierModel
from tools.classifier_training.train import DEFAULT_SEED as CLASSIFIER_SEED
from tools.classifier_training.training_data import complexity_splits
from tools.paths import DATA_DIR, REPO_ROOT
from tools.profiler.eval_set import EvalItem, parse_number

PROFILE_PATH = REPO_ROOT / "deploy" / "profiler" / "real-eval.jsonl"
HELDOUT_PATH = REPO_ROOT / "benchmarks" / "data" / "routing-heldout.jsonl"

GSM8K_INSTRUCTION = ("Solve this math problem. Reason briefly, then give the final answer on its own last line as "
                     "'#### <number>'.\n\n")
# Long enough for the brief worked answers the instruction asks for; the profiler reports how many hit it.
GSM8K_MAX_OUTPUT_TOKENS = 320
CHOICE_MAX_OUTPUT_TOKENS = 8
LETTERS = "ABCD"


class BuildError(ValueError):
    """A source line has no usable reference; the message names the file and line."""


@dataclass(frozen=True)
class Source:
    """One task's candidate items, before the classifier assigns tiers."""

    task: str
    rows: list[dict]


def _gsm8k_reference(answer: str, path: Path, line: int) -> float:
    found = re.findall(r"####\s*(.+)\s*$", answer)
    value = parse_number(found[-1]) if found else None
    if value is None:
        raise BuildError(f"{path}:{line}: GSM8K answer has no '#### <number>' reference")
    return value


def _gsm8k(path: Path, keep: set[str] | None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            record = json.loads(text)
            if keep is not None and record["question"] not in keep:
                continue
            rows.append({"source": f"gsm8k/{path.name}:{line}", "question": record["question"],
                         "expected": _gsm8k_reference(record["answer"], path, line)})
    return rows


def _gsm8k_item(row: dict, item_id: str) -> dict:
    return {"id": item_id, "messages": [{"role": "user", "content": GSM8K_INSTRUCTION + row["question"]}],
            "intent": "math", "scorer": "numeric", "expected": row["expected"], "tolerance": 0.01,
            "max_output_tokens": GSM8K_MAX_OUTPUT_TOKENS}


def _choice_item(row: dict, item_id: str, options: Sequence[str], rng: random.Random) -> dict:
    distractors = rng.sample([option for option in options if option != row["label"]], len(LETTERS) - 1)
    choices = [row["label"], *distractors]
    rng.shuffle(choices)
    lines = "\n".join(f"{letter}. {label.replace('_', ' ')}" for letter, label in zip(LETTERS, choices, strict=True))
    question = (f"Which intent does this customer message express?\n\nMessage: {row['text']}\n\n{lines}\n\n"
                "Answer with the letter of the correct option only.")
    return {"id": item_id, "messages": [{"role": "user", "content": question}], "intent": "classification",
            "scorer": "multiple_choice", "expected": LETTERS[choices.index(row["label"])],
            "max_output_tokens": CHOICE_MAX_OUTPUT_TOKENS}


def _clinc150(data_dir: Path) -> tuple[list[dict], dict[str, list[str]]]:
    document = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    domains = json.loads((data_dir / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    domain_of = {label: labels for labels in domains.values() for label in labels}
    rows = [{"source": f"clinc150/data_full.json:test[{index}]", "text": text, "label": label}
            for index, (text, label) in enumerate(document["test"])]
    return rows, domain_of


def _banking77(data_dir: Path) -> tuple[list[dict], list[str]]:
    path = data_dir / "banking77" / "test.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{"source": f"banking77/test.csv:{line}", "text": row["text"], "label": row["category"]}
                for line, row in enumerate(csv.DictReader(handle), start=2)]
    return rows, sorted({row["label"] for row in rows})


def build(data_dir: Path, profile_counts: tuple[int, int, int], heldout_counts: tuple[int, int, int],
          seed: int, classifier: ClassifierModel) -> tuple[list[dict], list[dict]]:
    """(profiling items, held-out items) as eval-set dicts (`tools.profiler.eval_set`), each validated.

    Counts are (GSM8K, CLINC150, Banking77) per set.

    Raises:
        BuildError: a source line without a usable reference, or too few source items for the counts asked.
    """
    rng = random.Random(seed)
    held_out_questions = {prompt.prompt for prompt in complexity_splits(data_dir, CLASSIFIER_SEED)["test"]
                          if prompt.dataset == "gsm8k"}
    gsm8k_train = _gsm8k(data_dir / "gsm8k" / "train.jsonl", None)
    gsm8k_test = _gsm8k(data_dir / "gsm8k" / "test.jsonl", held_out_questions)
    clinc, domain_of = _clinc150(data_dir)
    banking, banking_labels = _banking77(data_dir)
    for name, rows, need in (("GSM8K train", gsm8k_train, profile_counts[0]),
                             ("GSM8K held-out test", gsm8k_test, heldout_counts[0]),
                             ("CLINC150 test", clinc, profile_counts[1] + heldout_counts[1]),
                             ("Banking77 test", banking, profile_counts[2] + heldout_counts[2])):
        if len(rows) < need:
            raise BuildError(f"{name}: {len(rows)} items, {need} asked")
    clinc_rows = rng.sample(clinc, profile_counts[1] + heldout_counts[1])
    banking_rows = rng.sample(banking, profile_counts[2] + heldout_counts[2])
    sets: list[list[dict]] = []
    for part, (gsm8k_rows, counts, clinc_part, banking_part) in enumerate((
            (gsm8k_train, profile_counts, clinc_rows[:profile_counts[1]], banking_rows[:profile_counts[2]]),
            (gsm8k_test, heldout_counts, clinc_rows[profile_counts[1]:], banking_rows[profile_counts[2]:]))):
        prefix = ("profile", "heldout")[part]
        items = [_gsm8k_item(row, f"{prefix}-gsm8k-{index}") | {"source": row["source"]}
                 for index, row in enumerate(rng.sample(gsm8k_rows, counts[0]))]
        items += [_choice_item(row, f"{prefix}-clinc150-{index}", domain_of[row["label"]], rng)
                  | {"source": row["source"]} for index, row in enumerate(clinc_part)]
        items += [_choice_item(row, f"{prefix}-banking77-{index}", banking_labels, rng) | {"source": row["source"]}
                  for index, row in enumerate(banking_part)]
        rng.shuffle(items)
        texts = [chat_text((turn["role"], turn["content"]) for turn in item["messages"]) for item in items]
        for item, classification in zip(items, classifier.classify_batch(texts), strict=True):
            item["tier"] = classification.tier.value
        for item in items:
            EvalItem.model_validate(item)
        sets.append(items)
    return sets[0], sets[1]


def _counts(text: str) -> tuple[int, int, int]:
    parts = tuple(int(part) for part in text.split(","))
    if len(parts) != 3 or min(parts) < 0:
        raise argparse.ArgumentTypeError("expected three counts: GSM8K,CLINC150,Banking77")
    return parts  # type: ignore[return-value]


def _write(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    tiers = Counter(item["tier"] for item in items)
    tasks = Counter(item["id"].split("-")[1] for item in items)
    print(f"wrote {len(items)} items to {path}: tasks {dict(tasks)}, tiers {dict(tiers)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--profile-items", type=_counts, default=(60, 40, 40), metavar="GSM8K,CLINC150,BANKING77")
    parser.add_argument("--heldout-items", type=_counts, default=(80, 60, 60), metavar="GSM8K,CLINC150,BANKING77")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile-output", type=Path, default=PROFILE_PATH)
    parser.add_argument("--heldout-output", type=Path, default=HELDOUT_PATH)
    args = parser.parse_args(argv)
    try:
        profile, heldout = build(args.data_dir, args.profile_items, args.heldout_items, args.seed,
                                 ClassifierModel.load(DEFAULT_ARTIFACT_DIR))
    except BuildError as exc:
        print(f"error: {exc}")
        return 1
    _write(args.profile_output, profile)
    _write(args.heldout_output, heldout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
