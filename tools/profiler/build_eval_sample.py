"""Builds `deploy/profiler/eval-sample.jsonl`: a small eval set of real held-out items from `data/`.

    .venv/bin/python -m tools.profiler.build_eval_sample [--data-dir data] [--output FILE]

Every item is in the classifier's test split (`tools.classifier_training.training_data.complexity_splits` with the
classifier's default seed, or CLINC150's own test split), so the sample never overlaps what the classifier trained
on; the script checks this and fails otherwise. Sources and answers (see README.md beside this file):
- GSM8K (RouteLLM `gsm8k_responses.csv`): the file has no gold column; the expected number is the final answer of a
  response RouteLLM marked correct (the weak model's "#### N" when it is correct, else the strong model's last
  number), checked here against the hard-coded value, which was also worked out by hand.
- MMLU (RouteLLM `mmlu_responses/mmlu_anatomy.csv`): the file has no gold column either; the letters are MMLU's own
  answers, looked up in public copies of the MMLU anatomy test set and hard-coded below.
- CLINC150 (`data_full.json` test split): the label is the dataset's; the prompt offers the banking domain's 15
  intents (from `domains.json`).
Tiers follow RouteLLM's correctness labels (the classifier's definition of complexity): simple when the weak model
(Mixtral-8x7B-Instruct) is right, complex when only the strong model (GPT-4-1106-preview) is, hard when neither is.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from tools.classifier_training.data import STRONG_MODEL, WEAK_MODEL
from tools.classifier_training.train import DEFAULT_SEED
from tools.classifier_training.training_data import complexity_splits
from tools.paths import DATA_DIR, REPO_ROOT

# Prompt prefix (exact start of RouteLLM's prompt) -> expected final number.
GSM8K = {
    "If 6 potatoes makes 36 hash browns": 576,
    "Caroline is three times older than Ben": 24,
    "John goes to the market and buys 3 goats": 4500,
    "Marcus is half of Leo’s age": 42,
    "Shiloh is 44 years old today": 10,
    "Royce takes 40 minutes more than double Rob": 280,
}
# Prompt prefix -> MMLU answer letter.
MMLU_ANATOMY = {
    "Which of the following describes the cluster of blood capillaries": "B",
    "Male hormones are produced by which of the following?": "D",
    "On which surfaces of the teeth is dental plaque most likely": "B",
    "Which of the following bones develop by endochondral ossification?": "B",
}
CLINC150 = (
    "can you please provide me with assistance in moving money from one account to another",
    "would you tell me my bank balance",
    "can you freeze my bank account",
    "i don't remember the pin number to my card",
)
GSM8K_INSTRUCTION = "Solve the problem. End your answer with a line '#### <number>'.\n\n"
MMLU_INSTRUCTION = "Answer with the letter of the correct option only.\n\n"


def tier_of(weak_correct: bool, strong_correct: bool) -> str:
    return "simple" if weak_correct else "complex" if strong_correct else "hard"


def _final_number(text: str, marker: bool) -> float | None:
    found = re.findall(r"####\s*(-?[\d,\.]+)" if marker else r"-?\d[\d,]*(?:\.\d+)?", text)
    return float(found[-1].replace(",", "").rstrip(".")) if found else None


def _held_out(data_dir: Path) -> dict[str, object]:
    return {prompt.prompt: prompt for prompt in complexity_splits(data_dir, DEFAULT_SEED)["test"]}


def _find(prompts: dict[str, object], prefix: str, dataset: str):
    matches = [p for text, p in prompts.items() if text.startswith(prefix) and p.dataset == dataset]  # type: ignore[attr-defined]
    if len(matches) != 1:
        raise SystemExit(f"{dataset} item {prefix!r}: {len(matches)} matches in the held-out split, expected 1")
    return matches[0]


def build(data_dir: Path) -> list[dict]:
    held_out = _held_out(data_dir)
    with (data_dir / "routellm" / "gsm8k" / "gsm8k_responses.csv").open(newline="") as handle:
        responses = {row["prompt"]: row for row in csv.DictReader(handle)}
    items: list[dict] = []
    for index, (prefix, expected) in enumerate(GSM8K.items()):
        prompt = _find(held_out, prefix, "gsm8k")
        row = responses[prompt.prompt]
        derived = (_final_number(row[f"{WEAK_MODEL}_response"], marker=True) if prompt.weak_correct
                   else _final_number(row[f"{STRONG_MODEL}_response"], marker=False))
        if derived != expected:
            raise SystemExit(f"gsm8k item {prefix!r}: the correct response says {derived}, hard-coded {expected}")
        items.append({"id": f"gsm8k-{index}", "messages": [{"role": "user", "content": GSM8K_INSTRUCTION + prompt.prompt}],
                      "tier": tier_of(prompt.weak_correct, prompt.strong_correct), "intent": "math",
                      "scorer": "numeric", "expected": expected, "tolerance": 0.01, "max_output_tokens": 256})
    for index, (prefix, letter) in enumerate(MMLU_ANATOMY.items()):
        prompt = _find(held_out, prefix, "mmlu")
        items.append({"id": f"mmlu-anatomy-{index}",
                      "messages": [{"role": "user", "content": MMLU_INSTRUCTION + prompt.prompt}],
                      "tier": tier_of(prompt.weak_correct, prompt.strong_correct), "intent": "question_answering",
                      "scorer": "multiple_choice", "expected": letter, "max_output_tokens": 8})
    clinc = json.loads((data_dir / "clinc150" / "data_full.json").read_text())
    labels = json.loads((data_dir / "clinc150" / "domains.json").read_text())["banking"]
    test = dict(clinc["test"])
    for index, text in enumerate(CLINC150):
        if text not in test:
            raise SystemExit(f"clinc150 item {text!r} is not in the test split")
        label = test[text]
        question = (f"Classify the intent of this banking request. Answer with exactly one label from: "
                    f"{', '.join(labels)}.\n\nRequest: {text}")
        items.append({"id": f"clinc150-{index}", "messages": [{"role": "user", "content": question}],
                      "tier": "simple", "intent": "classification", "scorer": "exact_match",
                      "expected": list(dict.fromkeys([label, label.replace("_", " ")])), "stop": ["\n"], "max_output_tokens": 8})
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "deploy" / "profiler" / "eval-sample.jsonl")
    args = parser.parse_args()
    items = build(args.data_dir)
    args.output.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    print(f"wrote {len(items)} items to {args.output}")


if __name__ == "__main__":
    main()
