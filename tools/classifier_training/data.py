"""Reads the shared evaluation data (`data/` in the repository, see its README) into plain records.

Sources (cited in `tools/classifier_training/README.md`): RouteLLM per-prompt correctness of a weak model
(Mixtral-8x7B-Instruct) and a strong one (GPT-4-1106-preview) on GSM8K and MMLU, MT-Bench questions, CLINC150
and Banking77. Prompts listed in RouteLLM's `*contaminated_prompts.jsonl` are dropped here, so nothing downstream
(training, validation, test) ever sees them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"


@dataclass(frozen=True)
class RoutedPrompt:
    """One benchmark prompt with the correctness of the weak and the strong model on it.

    Attributes:
        dataset: "gsm8k" or "mmlu".
        subject: MMLU subject (for example "college_physics"); "" for GSM8K.
        prompt: The prompt text exactly as RouteLLM sent it.
        weak_correct: Whether the weak model answered correctly.
        strong_correct: Whether the strong model answered correctly.
    """

    dataset: str
    subject: str
    prompt: str
    weak_correct: bool
    strong_correct: bool

    @property
    def needs_strong(self) -> bool:
        """The complexity label: the weak model fails where the strong one succeeds."""
        return self.strong_correct and not self.weak_correct


@dataclass(frozen=True)
class LabelledText:
    """A text from an intent data set (CLINC150, Banking77) or MT-Bench.

    Attributes:
        source: "clinc150", "banking77" or "mt_bench".
        split: The source's own split ("train", "val", "test"; MT-Bench has none: "all").
        text: The text.
        label: The source's label (CLINC150/Banking77 intent name, MT-Bench category).
    """

    source: str
    split: str
    text: str
    label: str


def _contaminated(path: Path) -> set[str]:
    return {json.loads(line)["eval_prompt"].strip() for line in path.read_text().splitlines() if line.strip()}


def load_gsm8k(data_dir: Path) -> list[RoutedPrompt]:
    """GSM8K prompts (1,319 rows less the contaminated ones) in file order."""
    folder = data_dir / "routellm" / "gsm8k"
    contaminated = _contaminated(folder / "contaminated_prompts.jsonl")
    with (folder / "gsm8k_responses.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        RoutedPrompt("gsm8k", "", row["prompt"], row[WEAK_MODEL] == "True", row[STRONG_MODEL] == "True")
        for row in rows
        if row["prompt"].strip() not in contaminated
    ]


def load_mmlu(data_dir: Path) -> list[RoutedPrompt]:
    """MMLU prompts of all 57 subjects (14,042 rows less the contaminated ones), sorted by subject then file order."""
    folder = data_dir / "routellm"
    contaminated = _contaminated(folder / "mmlu_contaminated_prompts.jsonl")
    prompts: list[RoutedPrompt] = []
    for path in sorted((folder / "mmlu_responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["prompt"].strip() in contaminated:
                    continue
                prompts.append(
                    RoutedPrompt(
                        "mmlu", subject, row["prompt"], row[WEAK_MODEL] == "True", row[STRONG_MODEL] == "True"
                    )
                )
    return prompts


def load_mt_bench(data_dir: Path) -> list[LabelledText]:
    """The first turn of each of the 80 MT-Bench questions (label: the question's category), less contaminated ones.

    Second turns ("Rewrite your previous response...") depend on the first answer, so their category says little
    about the text itself: they are not used.
    """
    folder = data_dir / "routellm" / "mt_bench"
    contaminated = _contaminated(folder / "contaminated_prompts.jsonl")
    questions = [
        json.loads(line) for line in (folder / "question.jsonl").read_text().splitlines() if line.strip()
    ]
    return [
        LabelledText("mt_bench", "all", question["turns"][0], question["category"])
        for question in questions
        if question["turns"][0].strip() not in contaminated
    ]


def load_clinc150(data_dir: Path) -> list[LabelledText]:
    """CLINC150 `data_full.json`: in-scope train/val/test and out-of-scope ("oos") texts, split names kept."""
    document = json.loads((data_dir / "clinc150" / "data_full.json").read_text())
    return [
        LabelledText("clinc150", split.removeprefix("oos_"), text, label)
        for split in ("train", "val", "test", "oos_train", "oos_val", "oos_test")
        for text, label in document[split]
    ]


def load_banking77(data_dir: Path) -> list[LabelledText]:
    """Banking77 train and test CSVs (`text,category`)."""
    texts: list[LabelledText] = []
    for split in ("train", "test"):
        with (data_dir / "banking77" / f"{split}.csv").open(newline="") as handle:
            texts.extend(
                LabelledText("banking77", split, row["text"], row["category"])
                for row in csv.DictReader(handle)
            )
    return texts


def data_fingerprint(data_dir: Path) -> str:
    """SHA-256 over the relative paths and bytes of every data file the trainer reads (part of the model version)."""
    digest = hashlib.sha256()
    patterns = (
        "routellm/gsm8k/*.csv",
        "routellm/gsm8k/*.jsonl",
        "routellm/mmlu_contaminated_prompts.jsonl",
        "routellm/mmlu_responses/*.csv",
        "routellm/mt_bench/question.jsonl",
        "routellm/mt_bench/contaminated_prompts.jsonl",
        "clinc150/data_full.json",
        "banking77/*.csv",
    )
    for pattern in patterns:
        for path in sorted(data_dir.glob(pattern)):
            digest.update(str(path.relative_to(data_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
