"""A deterministic sample of held-out prompts from the shared evaluation data, for the main job (`quantmesh up
--run-sample`).

"Held out" means the Classifier never trained on them: GSM8K and MMLU prompts come from the Classifier's own test
split (`tools.classifier_training.training_data.complexity_splits`, same seed), MT-Bench questions from its test split by
category (the same `stratified_split` call the Classifier's intent head makes), CLINC150 from the source's own
`test` split (in-scope intents). RouteLLM's contaminated prompts are already dropped by `tools.classifier_training.data`.
Sources: lm-sys/RouteLLM (GSM8K, MMLU, MT-Bench; Apache-2.0 / MIT) and clinc/oos-eval (CLINC150; CC BY 3.0), see
`data/README.md`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tools.classifier_training import data
from tools.classifier_training.splits import TEST, stratified_split
from tools.classifier_training.training_data import TEST_FRACTION, VALIDATION_FRACTION, complexity_splits

SOURCES = ("gsm8k", "mmlu", "clinc150", "mt_bench")


@dataclass(frozen=True)
class SamplePrompt:
    """One prompt of the sample: its source data set, the text and the source's label (subject, intent, category)."""

    source: str
    text: str
    label: str


def held_out_prompts(data_dir: Path, source: str, split_seed: int) -> list[SamplePrompt]:
    """Every held-out prompt of `source`, in a deterministic order.

    Args:
        data_dir: The shared data folder (its README describes the layout).
        source: One of `SOURCES`.
        split_seed: The seed the Classifier's splits were made with (its training seed).

    Raises:
        ValueError: unknown source.
        FileNotFoundError: the data folder lacks the source's files.
    """
    if source in ("gsm8k", "mmlu"):
        test = complexity_splits(data_dir, split_seed)[TEST]
        return [SamplePrompt(p.dataset, p.prompt, p.subject or "gsm8k") for p in test if p.dataset == source]
    if source == "mt_bench":
        splits = stratified_split(
            data.load_mt_bench(data_dir), key=lambda t: t.text, stratum=lambda t: t.label,
            validation_fraction=VALIDATION_FRACTION, test_fraction=TEST_FRACTION, seed=split_seed,
        )
        return [SamplePrompt("mt_bench", t.text, t.label) for t in splits[TEST]]
    if source == "clinc150":
        return [
            SamplePrompt("clinc150", t.text, t.label)
            for t in data.load_clinc150(data_dir)
            if t.split == "test" and t.label != "oos"
        ]
    raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")


def sample_prompts(data_dir: Path, counts: dict[str, int], *, seed: int, split_seed: int) -> list[SamplePrompt]:
    """`counts[source]` held-out prompts per source, drawn with `seed`, interleaved round-robin across sources.

    Raises:
        ValueError: unknown source, a negative count, or more prompts asked than the source holds out.
    """
    per_source: list[list[SamplePrompt]] = []
    for source, count in counts.items():
        if count < 0:
            raise ValueError(f"sample count for {source} must be >= 0, got {count}")
        if count == 0:
            continue
        pool = held_out_prompts(data_dir, source, split_seed)
        if count > len(pool):
            raise ValueError(f"{source}: {count} prompts asked, only {len(pool)} held out")
        per_source.append(random.Random(f"{seed}:{source}").sample(pool, count))
    interleaved: list[SamplePrompt] = []
    for index in range(max((len(p) for p in per_source), default=0)):
        interleaved.extend(prompts[index] for prompts in per_source if index < len(prompts))
    return interleaved
