"""Builds the labelled training / validation / test sets of both heads from the shared data (pure given the data).

Complexity ("needs the strong model" = weak wrong AND strong right, per prompt): GSM8K and MMLU prompts, contaminated
ones dropped, duplicates dropped, split 60 / 15 / 25 % stratified by dataset, MMLU subject and label (`splits`).

Intent (the ten `TaskIntent` values less OTHER, which has no examples here): see `INTENT_*` below and the README.
Every source is split before examples are made, so no text is in two splits: GSM8K / MMLU follow the complexity
split, CLINC150 keeps its own train / val / test, Banking77 its test and a stratified 15 % of its train as
validation, MT-Bench questions are split 60 / 15 / 25 % by category; the templated intents also use disjoint
templates per split (`intent_templates.TEMPLATE_SPLITS`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tools.classifier_training import data
from tools.classifier_training.intent_templates import TEMPLATE_SPLITS, TEMPLATES
from tools.classifier_training.splits import TEST, TRAIN, VALIDATION, stratified_split

SPLIT_NAMES = (TRAIN, VALIDATION, TEST)
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.25

INTENTS = (
    "classification",
    "extraction",
    "question_answering",
    "summarization",
    "code",
    "math",
    "reasoning",
    "creative",
    "chat",
    "other",
)
MMLU_MATH_SUBJECTS = frozenset(
    {
        "abstract_algebra",
        "college_mathematics",
        "elementary_mathematics",
        "high_school_mathematics",
        "high_school_statistics",
    }
)
MMLU_REASONING_SUBJECTS = frozenset({"formal_logic", "logical_fallacies"})
MT_BENCH_INTENTS = {
    "writing": "creative",
    "roleplay": "creative",
    "reasoning": "reasoning",
    "math": "math",
    "coding": "code",
    "extraction": "extraction",
    "stem": "question_answering",
    "humanities": "question_answering",
}
# Examples per intent and split (sources are subsampled to these caps so that no intent swamps the others).
INTENT_CAPS = {TRAIN: 1500, VALIDATION: 300, TEST: 500}


@dataclass(frozen=True)
class IntentExample:
    """One labelled intent example; `origin` says where it came from (for example "template:code:7" or "gsm8k")."""

    text: str
    intent: str
    origin: str


def complexity_splits(
    data_dir: Path, seed: int, traffic: list[data.RoutedPrompt] | None = None
) -> dict[str, list[data.RoutedPrompt]]:
    """GSM8K + MMLU prompts (contaminated and duplicate prompts dropped), plus the user's own labelled `traffic`
    (dataset "traffic"), split into train / validation / test."""
    unique: dict[tuple[str, str], data.RoutedPrompt] = {}
    for prompt in data.load_gsm8k(data_dir) + data.load_mmlu(data_dir) + (traffic or []):
        unique.setdefault((prompt.dataset, prompt.prompt), prompt)
    return stratified_split(
        list(unique.values()),
        key=lambda p: f"{p.dataset}:{p.prompt}",
        stratum=lambda p: (p.dataset, p.subject, p.needs_strong),
        validation_fraction=VALIDATION_FRACTION,
        test_fraction=TEST_FRACTION,
        seed=seed,
    )


def routed_prompt_intent(prompt: data.RoutedPrompt) -> str:
    """The intent of a benchmark prompt: GSM8K and MMLU math subjects are math, MMLU logic subjects reasoning,
    other MMLU subjects question answering."""
    if prompt.dataset == "gsm8k" or prompt.subject in MMLU_MATH_SUBJECTS:
        return "math"
    if prompt.subject in MMLU_REASONING_SUBJECTS:
        return "reasoning"
    return "question_answering"


def request_splits(data_dir: Path, seed: int) -> dict[str, list[data.LabelledText]]:
    """CLINC150 (in-scope only) and Banking77 texts by split: the requests the templates are filled with."""
    clinc = [text for text in data.load_clinc150(data_dir) if text.label != "oos"]
    banking = data.load_banking77(data_dir)
    banking_train = stratified_split(
        [text for text in banking if text.split == "train"],
        key=lambda t: t.text,
        stratum=lambda t: t.label,
        validation_fraction=VALIDATION_FRACTION,
        test_fraction=0.0,
        seed=seed,
    )
    return {
        TRAIN: [t for t in clinc if t.split == "train"] + banking_train[TRAIN],
        VALIDATION: [t for t in clinc if t.split == "val"] + banking_train[VALIDATION],
        TEST: [t for t in clinc if t.split == "test"] + [t for t in banking if t.split == "test"],
    }


def _fill(
    template: str,
    rng: random.Random,
    pool: list[data.LabelledText],
    labels_by_source: dict[str, list[str]],
    text: data.LabelledText,
) -> str:
    """Fills one template with `text`, a few other texts of `pool` and label names of `text`'s source."""
    others = rng.sample(pool, rng.randint(3, 6))
    group = [text, *others]
    label_names = rng.sample([name for name in labels_by_source[text.source] if name != text.label], 4) + [
        text.label
    ]
    rng.shuffle(label_names)
    words = text.text.split()
    return template.format(
        text=text.text,
        texts="\n".join(item.text for item in group),
        bullets="\n".join(f"- {item.text}" for item in group),
        transcript="\n".join(
            f"{'User' if i % 2 == 0 else 'Agent'}: {item.text}" for i, item in enumerate(group)
        ),
        labels=", ".join(name.replace("_", " ") for name in label_names),
        label_lines="\n".join(f"- {name.replace('_', ' ')}" for name in label_names),
        label=text.label,
        topic=text.label.replace("_", " "),
        word=max(words, key=len) if words else text.text,
    )


def intent_splits(
    data_dir: Path,
    seed: int,
    complexity: dict[str, list[data.RoutedPrompt]],
    traffic: list[IntentExample] | None = None,
) -> dict[str, list[IntentExample]]:
    """Labelled intent examples per split (at most `INTENT_CAPS[split]` per intent from the shared data, plus every
    example of the user's own labelled `traffic`, split 60 / 15 / 25 % by intent), deterministic for a seed."""
    requests = request_splits(data_dir, seed)
    traffic_splits = stratified_split(
        traffic or [],
        key=lambda e: e.text,
        stratum=lambda e: e.intent,
        validation_fraction=VALIDATION_FRACTION,
        test_fraction=TEST_FRACTION,
        seed=seed,
    )
    labels_by_source: dict[str, list[str]] = defaultdict(list)
    for texts in requests.values():
        for text in texts:
            if text.label not in labels_by_source[text.source]:
                labels_by_source[text.source].append(text.label)
    for names in labels_by_source.values():
        names.sort()
    mt_bench = stratified_split(
        data.load_mt_bench(data_dir),
        key=lambda t: t.text,
        stratum=lambda t: t.label,
        validation_fraction=VALIDATION_FRACTION,
        test_fraction=TEST_FRACTION,
        seed=seed,
    )
    result: dict[str, list[IntentExample]] = {}
    for split in SPLIT_NAMES:
        rng = random.Random(f"{seed}:{split}")
        by_intent: dict[str, list[IntentExample]] = defaultdict(list)
        for prompt in complexity[split]:
            if prompt.dataset == "traffic":
                continue  # traffic intents come from the traffic file's own "intent" field
            by_intent[routed_prompt_intent(prompt)].append(
                IntentExample(prompt.prompt, routed_prompt_intent(prompt), prompt.dataset)
            )
        for text in mt_bench[split]:
            intent = MT_BENCH_INTENTS[text.label]
            by_intent[intent].append(IntentExample(text.text, intent, f"mt_bench:{text.label}"))
        pool = requests[split]
        by_intent["chat"].extend(IntentExample(t.text, "chat", t.source) for t in pool)
        cap = INTENT_CAPS[split]
        for intent, templates in TEMPLATES.items():
            positions = TEMPLATE_SPLITS[split]
            for text in rng.sample(pool, cap):
                position = rng.choice(positions)
                filled = _fill(templates[position], rng, pool, labels_by_source, text)
                by_intent[intent].append(IntentExample(filled, intent, f"template:{intent}:{position}"))
        examples: list[IntentExample] = []
        for intent in sorted(by_intent):
            members = by_intent[intent]
            real = [e for e in members if not e.origin.startswith("template:")]
            templated = [e for e in members if e.origin.startswith("template:")]
            chosen = real if len(real) <= cap else rng.sample(real, cap)
            chosen += templated[: max(0, cap - len(chosen))]
            examples.extend(chosen)
        result[split] = examples + traffic_splits[split]
    return result


class TrafficRecord(BaseModel):
    """One line of a user's labelled-traffic JSONL file (see README: "Retraining on your own traffic").

    `text` is required; `intent` labels the intent head; `weak_correct` and `strong_correct` (both or neither) say
    whether the user's small and large models answered this prompt correctly, and label the complexity head.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    intent: Literal[INTENTS] | None = None  # type: ignore[valid-type]
    weak_correct: bool | None = None
    strong_correct: bool | None = None

    @model_validator(mode="after")
    def _correctness_pair(self) -> TrafficRecord:
        if (self.weak_correct is None) != (self.strong_correct is None):
            raise ValueError("give both weak_correct and strong_correct, or neither")
        if self.intent is None and self.weak_correct is None:
            raise ValueError("a record needs an intent, or weak_correct and strong_correct, or both")
        return self


def load_traffic(path: Path) -> tuple[list[data.RoutedPrompt], list[IntentExample]]:
    """Reads a labelled-traffic JSONL file into complexity prompts (dataset "traffic") and intent examples.

    Raises:
        ValueError: a line is not valid JSON or does not match `TrafficRecord` (the message names the line).
    """
    prompts: list[data.RoutedPrompt] = []
    examples: list[IntentExample] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = TrafficRecord.model_validate_json(line)
        except ValidationError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
        if record.weak_correct is not None and record.strong_correct is not None:
            prompts.append(
                data.RoutedPrompt("traffic", "", record.text, record.weak_correct, record.strong_correct)
            )
        if record.intent is not None:
            examples.append(IntentExample(record.text, record.intent, "traffic"))
    return prompts, examples


@dataclass(frozen=True)
class TrainingSets:
    """Both heads' labelled splits (`SPLIT_NAMES` keys)."""

    complexity: dict[str, list[data.RoutedPrompt]]
    intent: dict[str, list[IntentExample]]


def build_training_sets(data_dir: Path, seed: int, traffic_path: Path | None = None) -> TrainingSets:
    """The splits `train` fits on and `evaluate` scores, from the shared data and optional labelled traffic."""
    traffic_prompts, traffic_examples = load_traffic(traffic_path) if traffic_path else ([], [])
    complexity = complexity_splits(data_dir, seed, traffic_prompts)
    return TrainingSets(complexity, intent_splits(data_dir, seed, complexity, traffic_examples))
